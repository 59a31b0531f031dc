import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

test("runTool writes the tool's stdout to the file asked for, through the shell and when spawned", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-runner-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, "out");
  writeFileSync(out, "old and longer than what replaces it\n");
  await runTool("/bin/sh", ["-c", 'printf "%s\\n" "$PWD"; echo err >&2'], { cwd: dir, stdout: out });
  assert.equal(readFileSync(out, "utf8"), `${dir}\n`, "truncated, and the tool ran in its cwd");
  // A newline in an argument: spawned directly, with the same result.
  await runTool("/bin/echo", ["a\nb"], { stdout: out });
  assert.equal(readFileSync(out, "utf8"), "a\nb\n");
  await assert.rejects(runTool("/bin/sh", ["-c", "echo partial; echo bad >&2; exit 3", "x\ny"], { stdout: out }), (e: { code?: number; stderr?: string }) => e.code === 3 && e.stderr === "bad\n");
  assert.equal(readFileSync(out, "utf8"), "partial\n");
});
