import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { launchStep } from "./step-launcher.ts";

interface Outcome {
  stdout: string;
  stderr: string;
  ready: boolean;
  status?: number;
  lost?: Error;
}

function launch(argv: string[], onStart?: (kill: () => void) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const o: Outcome = { stdout: "", stderr: "", ready: false };
    const step = launchStep(argv, {
      onOutput: (chunk, stream) => (o[stream] += chunk),
      onReady: () => (o.ready = true),
      onExit: (status) => resolve({ ...o, status }),
      onLost: (lost) => resolve({ ...o, lost }),
    });
    assert.ok(step, "a launcher shell starts");
    onStart?.(() => step.kill());
  });
}

test("a launched step gets its arguments byte for byte, its own output and exit status, and is no child of this process", async () => {
  const odd = "two\nlines\\n and \\\\ a tab\t and 'quotes' \"$HOME\" `x` %b %s\n";
  const script = `printf %s "$1"; printf 'E%s' "$PPID" >&2; printf ok >&3; exit 7`;
  const a = await launch(["/bin/sh", "-c", script, "sh", odd]);
  assert.equal(a.stdout, odd);
  assert.equal(a.status, 7);
  assert.ok(a.ready, "fd 3 is the status pipe");
  const ppid = Number(a.stderr.slice(1));
  assert.notEqual(ppid, process.pid, "started by the launcher shell, not forked from this process");
  assert.ok(readFileSync(`/proc/${ppid}/cmdline`, "latin1").includes("sh"), "its parent is the launcher shell");
  // The same shell runs the next step: nothing of the last one's output leaks into it.
  const b = await launch(["/bin/sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x; echo; kill -TERM $$"]);
  assert.equal(b.stdout, "x".repeat(200000) + "\n");
  assert.equal(b.stderr, "");
  assert.equal(b.status, 128 + 15, "a signal's death reads as 128+N");
  assert.equal(b.ready, false);
});

test("killing a launched step ends it and its launcher; the next step gets a fresh launcher", async () => {
  const a = await launch(["/bin/sh", "-c", "echo started; exec sleep 30"], (kill) => setTimeout(kill, 200));
  assert.ok(a.lost, "the step is reported lost, not exited");
  const b = await launch(["/bin/sh", "-c", "echo again"]);
  assert.equal(b.stdout, "again\n");
  assert.equal(b.status, 0);
});

test("a launched step's output arrives while it runs, not when it ends", { timeout: 15_000 }, async () => {
  let saw = "";
  let kill: (() => void) | undefined;
  const done = new Promise<void>((resolve) => {
    const step = launchStep(["/bin/sh", "-c", "echo ready; exec sleep 30"], {
      onOutput: (chunk) => {
        saw += chunk;
        if (saw === "ready\n") kill!();
      },
      onReady: () => undefined,
      onExit: () => resolve(),
      onLost: () => resolve(),
    });
    kill = () => step!.kill();
  });
  await done;
  assert.equal(saw, "ready\n");
});

test("the sandbox's setup script, sent by reference to the launcher's copy, arrives byte for byte", async () => {
  const { SETUP_SCRIPT } = await import("./setup-script.ts");
  const a = await launch(["/bin/sh", "-c", 'printf %s "$1"; printf %s "$2" >&2', "sh", SETUP_SCRIPT, `${SETUP_SCRIPT}x`]);
  assert.equal(a.stdout, SETUP_SCRIPT);
  assert.equal(a.stderr, `${SETUP_SCRIPT}x`, "an argument that only starts like it goes as itself");
  assert.equal(a.status, 0);
});
