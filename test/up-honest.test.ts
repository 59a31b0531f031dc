// Results that say what happened: exported promises of stages are awaited, a config that exports
// nothing is an error for plan as for up, Ctrl-C is "interrupted" (exit 130) and not a failed
// stage, `mstage shell` exits with its command's code, and a config-only change is counted as one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mstage } from "./helpers/mstage-cli.ts";
import { MSTAGE_BIN, expectOk, mstageAs, testUsers, tool, userDir } from "./up-harness.ts";

const BASE = `import { inline, local, scratch, stage } from "mstage";
const base = stage("base", {
  from: scratch(),
  copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) },
  shell: ["/bin/busybox", "sh", "-c"],
  run: "/bin/busybox --install -s /bin",
});
`;

function project(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "mstage-honest-"));
  writeFileSync(join(dir, "images.ts"), text);
  return dir;
}

const busybox = existsSync("/bin/busybox") ? undefined : "busybox-static is not installed (/bin/busybox): run .ci/setup";
const env = { MSTAGE_STORE: mkdtempSync(join(tmpdir(), "mstage-honest-store-")) };

test("an exported Promise<Stage> is awaited: its stage is a target, and its rejection is an error of images.ts", () => {
  const dir = project(`import { inline, scratch, stage } from "mstage";
async function make(name: string) {
  await new Promise((r) => setTimeout(r, 10));
  return stage(name, { from: scratch(), copy: { "/hello": inline("hi\\n") } });
}
export const later = make("later");
export const several = [make("one"), make("two")];
`);
  const r = mstage(dir, ["plan", "--offline"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\+ later +new/m);
  assert.match(r.stdout, /^\+ one +new/m);
  assert.match(r.stdout, /Plan: 3 new\./);

  writeFileSync(join(dir, "images.ts"), `export const broken = Promise.reject(new Error("no such service"));\n`);
  const bad = mstage(dir, ["plan", "--offline"], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: .*images\.ts.*no such service/m);
  assert.doesNotMatch(bad.stderr, /internal error/);
});

test("plan of a config that exports no stage says so and exits 1, like up", () => {
  const dir = project(`import { inline, scratch, stage } from "mstage";
const hidden = stage("hidden", { from: scratch(), copy: { "/x": inline("x") } });
void hidden;
`);
  for (const cmd of [["plan", "--offline"], ["up"]]) {
    const r = mstage(dir, cmd, env);
    assert.equal(r.code, 1, `${cmd[0]}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /images\.ts exports no stage, so there is nothing to build/);
  }
});

/** Runs `mstage up` on a pseudo-terminal (util-linux script) and presses Ctrl-C once `marker` shows. */
function upOnTerminal(cwd: string, store: string, marker: string): Promise<{ code: number | null; out: string }> {
  const cmd = `${process.execPath} ${MSTAGE_BIN} up`;
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qec", cmd, "/dev/null"], { cwd, env: { ...process.env, MSTAGE_STORE: store, TERM: "xterm" }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let sent = false;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (!sent && out.includes(marker)) {
        sent = true;
        child.stdin.write("\x03");
      }
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out }));
  });
}

test("Ctrl-C during up says interrupted and exits 130; no stage is reported failed", { timeout: 120_000 }, async (t) => {
  const why = busybox ?? (tool("script") ? undefined : "script (util-linux) is missing");
  if (why) return t.skip(why);
  const dir = project(`${BASE}export const slow = stage("slow", { from: base, run: "echo started-${Date.now()}; sleep 60" });\n`);
  const store = userDir(testUsers()[0]!.name, "store");
  t.after(() => rmSync(store, { recursive: true, force: true }));
  const r = await upOnTerminal(dir, store, "started-");
  assert.equal(r.code, 130, r.out);
  assert.match(r.out, /slow .*interrupted after/);
  assert.match(r.out, /interrupted: the build stopped/);
  assert.doesNotMatch(r.out, /failed|internal error/);
});

test("shell exits with its command's code; a config-only rebuild is counted as config only", { timeout: 120_000 }, async (t) => {
  if (busybox) return t.skip(busybox);
  const user = testUsers()[0]!.name;
  const dir = project(`${BASE}export const app = stage("app", { from: base, run: "echo hi > /hi", labels: { v: "1" } });\n`);
  const store = userDir(user, "store");
  t.after(() => rmSync(store, { recursive: true, force: true }));
  const run = mstageAs(user, dir, store);
  expectOk(await run(["up"]), "up");
  const shell = await run(["shell", "app", "--", "/bin/sh", "-c", "test -f /hi && exit 7"]);
  assert.equal(shell.code, 7, shell.stderr);

  writeFileSync(join(dir, "images.ts"), readFileSync(join(dir, "images.ts"), "utf8").replace('v: "1"', 'v: "2"'));
  const again = expectOk(await run(["up"]), "config-only up");
  assert.match(again.stdout, /done in .*: 0 built, 1 cached, 1 config only/);
});
