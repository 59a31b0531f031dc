// A rebuild plans once: the local sources `up`'s no-op check hashed are handed to the process it
// re-executes in the user namespace, which then does not walk them again. strace shows which
// process touched the source's files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MSTAGE_BIN, expectOk, tool } from "./up-harness.ts";

const config = (round: number) => `import { local, scratch, stage } from "mstage";
const files = stage("files", { from: scratch(), copy: { "/src": local("./src") } });
export const app = stage("app", { from: files, env: { ROUND: "${round}" } });
`;

/** The trace file of each Node process: the invoker (started as node) and the one inside (unshare → sh → node). */
function nodeProcesses(dir: string): { invoker: string[]; inside: string[] } {
  const out: { invoker: string[]; inside: string[] } = { invoker: [], inside: [] };
  for (const f of readdirSync(dir)) {
    const lines = readFileSync(join(dir, f), "utf8").split("\n");
    const execs = lines.filter((l) => /^execve\(/.test(l) && /= 0$/.test(l));
    if (!execs.some((l) => l.startsWith(`execve("${process.execPath}"`))) continue;
    if (execs.some((l) => l.includes("unshare"))) out.inside.push(...lines);
    else out.invoker.push(...lines);
  }
  return out;
}

test("a rebuild's process in the user namespace does not walk the local sources the no-op check hashed", { timeout: 120_000 }, (t) => {
  if (!tool("strace")) return t.skip("strace is not installed: run .ci/setup");
  const dir = mkdtempSync(join(tmpdir(), "mstage-handoff-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const project = join(dir, "project");
  mkdirSync(join(project, "src"), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(project, "src", `file-${i}.txt`), `file ${i}\n`);
  writeFileSync(join(project, "images.ts"), config(1));
  const env = { ...process.env, MSTAGE_STORE: join(dir, "store"), NO_COLOR: "1" };
  const run = (argv: string[]) => {
    const r = spawnSync(argv[0]!, argv.slice(1), { cwd: project, env, encoding: "utf8", timeout: 100_000 });
    return { code: r.status ?? 1, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  };
  expectOk(run([process.execPath, MSTAGE_BIN, "up", "-q"]), "first up");

  // Not a no-op (app changed, files did not): the check plans, hashing ./src, and the build follows.
  writeFileSync(join(project, "images.ts"), config(2));
  const traces = join(dir, "trace");
  mkdirSync(traces);
  const r = expectOk(run(["strace", "-f", "-ff", "-qq", "-e", "trace=execve,%file,getdents64", "-o", join(traces, "t"), process.execPath, MSTAGE_BIN, "up"]), "traced up");
  assert.match(r.stdout, /1 built, 1 cached/, r.stdout);

  const { invoker, inside } = nodeProcesses(traces);
  assert.ok(invoker.length > 0 && inside.length > 0, `found both Node processes in ${readdirSync(traces).length} trace files`);
  const touches = (lines: string[]) => lines.filter((l) => l.includes(join(project, "src"))).length;
  assert.ok(touches(invoker) >= 20, `the no-op check walked ./src (${touches(invoker)} calls)`);
  assert.equal(touches(inside), 0, `the build walked ./src again:\n${inside.filter((l) => l.includes(join(project, "src"))).slice(0, 5).join("\n")}`);
});
