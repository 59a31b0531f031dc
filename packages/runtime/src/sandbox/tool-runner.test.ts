import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runTool } from "./tool-runner.ts";

test("runTool runs a tool with its arguments literally, in its cwd, and reports a failure as execFile does", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-runner-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const odd = `a b'c"$HOME\`x\`;*`;
  writeFileSync(join(dir, odd), "");
  await runTool("/usr/bin/test", ["-f", odd], { cwd: dir });
  await assert.rejects(runTool("/usr/bin/test", ["-f", odd]), (e: { code?: number }) => e.code === 1);
  await assert.rejects(runTool("/bin/ls", [join(dir, "missing")]), (e: { code?: number; stderr?: string }) => e.code === 2 && /missing/.test(e.stderr ?? ""));
  // An argument with a newline cannot go down the pipe: it is spawned directly, with the same result.
  await assert.rejects(runTool("/usr/bin/test", ["-f", "x\ny"], { cwd: dir }), (e: { code?: number }) => e.code === 1);
});

test("runTool answers many concurrent requests each with its own result", async () => {
  const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => runTool("/bin/sh", ["-c", `echo out; echo err-${i} >&2; exit ${i % 3}`])));
  results.forEach((r, i) => {
    if (i % 3 === 0) assert.equal(r.status, "fulfilled");
    else assert.ok(r.status === "rejected" && (r.reason as { code: number; stderr: string }).code === i % 3 && (r.reason as { stderr: string }).stderr === `err-${i}`, `request ${i}`);
  });
});

test("a process that used runTool still exits on its own once idle", () => {
  const src = `import { runTool } from ${JSON.stringify(new URL("./tool-runner.ts", import.meta.url).pathname)}; await runTool("/bin/true", []); console.log("ran");`;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", src], { encoding: "utf8", timeout: 30_000 });
  assert.equal(out.trim(), "ran");
});

test("a request that finds the shell busy with a slow tool is answered by another at once", async () => {
  const slow = runTool("/bin/sleep", ["2"]);
  const started = performance.now();
  await runTool("/bin/true", []);
  const ms = performance.now() - started;
  await slow;
  assert.ok(ms < 1500, `the quick tool waited ${ms.toFixed(0)} ms behind the slow one`);
});
