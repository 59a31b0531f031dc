// `mstage up --watch`, driven as a user would: a real process on a fixture project, files saved
// while it runs, its JSON event stream read line by line.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MSTAGE_BIN, copyFixture } from "./helpers/mstage-cli.ts";

interface Event {
  type: string;
  stage?: string;
  [k: string]: unknown;
}

/** A running `mstage up --watch --json` and the events it has printed so far. */
class WatchProcess {
  readonly events: Event[] = [];
  readonly child: ChildProcess;
  stderr = "";
  private waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;

  constructor(readonly dir: string, store: string) {
    this.child = spawn(process.execPath, [MSTAGE_BIN, "up", "--watch", "--json", "--store", store], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let buf = "";
    this.child.stdout!.on("data", (b: Buffer) => {
      buf += b.toString();
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) this.events.push(JSON.parse(line));
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr!.on("data", (b: Buffer) => (this.stderr += b.toString()));
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
  }

  /** Waits for the first event at index ≥ from that matches; returns its index. */
  async waitFor(pred: (e: Event) => boolean, from = 0, timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.events.findIndex((e, j) => j >= from && pred(e));
      if (i >= 0) return i;
      if (Date.now() > deadline || this.child.exitCode !== null) {
        throw new Error(`no matching event; got:\n${this.events.map((e) => JSON.stringify(e)).join("\n")}\nstderr:\n${this.stderr}`);
      }
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  started(from: number, to: number): string[] {
    return this.events.slice(from, to).filter((e) => e.type === "stage-start").map((e) => e.stage!);
  }
}

const isResult = (e: Event) => e.type === "result";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("mstage up --watch", () => {
  let store: string;
  let dir: string;
  let w: WatchProcess;

  before(async () => {
    store = mkdtempSync(join(tmpdir(), "mstage-watch-store-"));
    dir = copyFixture("watch-basic");
    w = new WatchProcess(dir, store);
    // The initial build's outputs are written, and the watcher sees every save from now on.
    await w.waitFor(isResult);
    await w.waitFor((e) => e.type === "watching");
  });

  after(() => {
    if (w.child.exitCode === null) w.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    spawnSync("unshare", ["--map-auto", "--map-root-user", "rm", "-rf", store]);
    rmSync(store, { recursive: true, force: true });
  });

  test("the initial build builds every exported stage and writes the layout", () => {
    const first = w.events.findIndex(isResult);
    assert.deepEqual(w.started(0, first).sort(), ["base", "greet", "other", "slow"]);
    const index = JSON.parse(readFileSync(join(dir, "oci", "index.json"), "utf8"));
    // One descriptor per ref; the SBOM and provenance referrers carry no ref.
    const named = index.manifests.filter((m: { annotations?: Record<string, string> }) => m.annotations?.["org.opencontainers.image.ref.name"]);
    assert.equal(named.length, 3);
  });

  test("saving a local source rebuilds only the stage that copies it", async () => {
    const from = w.events.length;
    writeFileSync(join(dir, "greeting.txt"), "good morning\n");
    const change = await w.waitFor((e) => e.type === "change", from);
    assert.deepEqual(w.events[change].paths, [join(dir, "greeting.txt")]);
    const plan = await w.waitFor((e) => e.type === "plan", change);
    const greet = (w.events[plan].stages as Array<{ name: string; status: string; reasons: string[] }>).find((s) => s.name === "greet")!;
    assert.equal(greet.status, "rebuild");
    assert.deepEqual(greet.reasons, ["local ./greeting.txt changed"]);
    const end = await w.waitFor(isResult, plan);
    assert.deepEqual(w.started(change, end), ["greet"]);
    assert.equal(w.events[end].built, 1);
    assert.equal(typeof w.events[end].saveToOutputMs, "number");
  });

  test("saving images.ts with a new stage builds that stage", async () => {
    const from = w.events.length;
    const file = join(dir, "images.ts");
    const text = readFileSync(file, "utf8");
    writeFileSync(file, text + `\nexport const added = stage("added", { from: base, run: "echo added > /added.txt" });\n`);
    const end = await w.waitFor(isResult, from);
    assert.deepEqual(w.started(from, end), ["added"]);
    const refs = JSON.parse(readFileSync(join(dir, "oci", "index.json"), "utf8")).manifests.map(
      (m: { annotations: Record<string, string> }) => m.annotations["org.opencontainers.image.ref.name"],
    );
    assert.ok(refs.includes("added"), refs.join(", "));
  });

  test("a syntax error is reported and the next good save recovers", async () => {
    const file = join(dir, "images.ts");
    const good = readFileSync(file, "utf8");
    let from = w.events.length;
    writeFileSync(file, good + "\nexport const broken = stage(\"broken\", {\n");
    const err = await w.waitFor((e) => e.type === "config-error", from);
    assert.match(String(w.events[err].message), /images\.ts:\d+:\d+/);
    assert.equal(w.child.exitCode, null, "watch keeps running after a bad save");

    from = w.events.length;
    writeFileSync(file, good.replace(`echo added`, `echo added again`));
    const end = await w.waitFor(isResult, from);
    assert.deepEqual(w.started(from, end), ["added"]);
  });

  test("a save during a long step cancels it and leaves no process behind", async () => {
    let from = w.events.length;
    writeFileSync(join(dir, "mode.txt"), "sleep\n");
    // The step says so just before it execs the sleep.
    await w.waitFor((e) => e.type === "log" && e.stage === "slow" && e.line === "sleeping", from);
    for (const t0 = Date.now(); pgrep("sleep 313").length === 0 && Date.now() - t0 < 2000; ) await sleep(20);
    assert.ok(pgrep("sleep 313").length > 0, "the step is running");

    from = w.events.length;
    writeFileSync(join(dir, "mode.txt"), "fast again\n");
    await w.waitFor((e) => e.type === "cancelled", from);
    const end = await w.waitFor(isResult, from);
    assert.deepEqual(pgrep("sleep 313"), [], "no process of the cancelled step remains");
    assert.ok(w.started(from, end).includes("slow"));
    const log = w.events.slice(from, end).find((e) => e.type === "log" && e.stage === "slow");
    assert.equal(log?.line, "fast");
  });

  test("SIGINT exits within 2 s with no process left", async () => {
    const t0 = Date.now();
    w.child.kill("SIGINT");
    const code = await Promise.race([w.exited, sleep(2000).then(() => "timeout" as const)]);
    assert.notEqual(code, "timeout", `still running 2 s after SIGINT; stderr:\n${w.stderr}`);
    assert.ok(Date.now() - t0 < 2000);
    assert.deepEqual(pgrep(MSTAGE_BIN + " up --watch"), []);
  });
});

function pgrep(pattern: string): string[] {
  const r = spawnSync("pgrep", ["-f", pattern], { encoding: "utf8" });
  return r.stdout.split("\n").filter((l) => l && Number(l) !== process.pid);
}
