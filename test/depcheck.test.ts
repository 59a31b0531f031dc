// The design rules, checked on the real tree (test/helpers/depcheck.ts says what they are), and
// each shown failing on a deliberately wrong import, so a rule that stopped matching would be seen.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { RANK, consoleCalls, exampleImports, folderCycles, packageViolations, type SourceFile } from "./helpers/depcheck.ts";

const root = new URL("..", import.meta.url).pathname;

function sources(dir: string, out: SourceFile[] = []): SourceFile[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === "node_modules" || name === "oci" || name === ".mstage") continue;
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.(ts|mts)$/.test(name)) out.push({ path: relative(root, p), text: readFileSync(p, "utf8") });
  }
  return out;
}

const packageFiles = (pkg: string) => sources(join(root, "packages", pkg, "src"));

for (const pkg of Object.keys(RANK)) {
  test(`package ${pkg} depends only on packages below it`, () => {
    const manifest = JSON.parse(readFileSync(join(root, "packages", pkg, "package.json"), "utf8"));
    assert.deepEqual(packageViolations(pkg, Object.keys({ ...manifest.dependencies, ...manifest.devDependencies }), packageFiles(pkg)), []);
  });

  test(`package ${pkg} has no cycle between its folders`, () => {
    assert.deepEqual(folderCycles(pkg, packageFiles(pkg)), []);
  });
}

test("core and runtime never call console", () => {
  assert.deepEqual(consoleCalls([...packageFiles("core"), ...packageFiles("runtime")]), []);
});

test("examples import only mstage", () => {
  const files = sources(join(root, "examples"));
  assert.ok(files.length > 0, "no images.ts found under examples/");
  assert.deepEqual(exampleImports(files), []);
});

test("each rule fails on a deliberately wrong import", () => {
  const f = (path: string, text: string): SourceFile => ({ path, text });
  // core importing the runtime, and core spawning processes.
  assert.deepEqual(packageViolations("core", [], [f("packages/core/src/plan.ts", `import { Store } from "@mstage/runtime";\nimport { spawn } from "node:child_process";`)]), [
    "packages/core/src/plan.ts imports @mstage/runtime",
    "packages/core/src/plan.ts imports node:child_process: core does no process or network I/O",
  ]);
  assert.deepEqual(packageViolations("runtime", ["@mstage/core", "mstage"], []), ["packages/runtime/package.json depends on mstage"]);
  assert.deepEqual(packageViolations("cli", [], [f("packages/cli/src/main.ts", `import x from "../../runtime/src/index.ts";`)]), [
    "packages/cli/src/main.ts reaches outside its package: ../../runtime/src/index.ts",
  ]);
  // commands → app is fine; app → commands closes a cycle; so does a dynamic import.
  const ok = [f("packages/cli/src/commands/up.ts", `import { checkNoop } from "../app/up-noop.ts";`), f("packages/cli/src/app/up-noop.ts", `import { loadConfig } from "../config/load.ts";`)];
  assert.deepEqual(folderCycles("cli", ok), []);
  assert.deepEqual(folderCycles("cli", [...ok, f("packages/cli/src/app/up-run.ts", `const m = await import("../commands/up.ts");`)]), [
    "cli: app/ → commands/ → app/ (packages/cli/src/app/up-run.ts imports ../commands/up.ts; packages/cli/src/commands/up.ts imports ../app/up-noop.ts)",
  ]);
  // A test file may import across folders freely; a file directly in src/ is a node of its own.
  assert.deepEqual(folderCycles("cli", [...ok, f("packages/cli/src/app/x.test.ts", `import "../commands/up.ts";`)]), []);
  assert.deepEqual(folderCycles("core", [f("packages/core/src/plan.ts", `import "./local/hash.ts";`), f("packages/core/src/local/hash.ts", `import type { Plan } from "../plan.ts";`)]), [
    "core: local/ → plan.ts → local/ (packages/core/src/local/hash.ts imports ../plan.ts; packages/core/src/plan.ts imports ./local/hash.ts)",
  ]);
  assert.deepEqual(consoleCalls([f("packages/runtime/src/store/gc.ts", `// console.log in a comment is fine\nconsole.warn("x");`), f("packages/runtime/src/a.test.ts", `console.log(1)`)]), [
    "packages/runtime/src/store/gc.ts:2 calls console: report through an event and let the CLI render it",
  ]);
  assert.deepEqual(exampleImports([f("examples/a/images.ts", `import { stage } from "mstage";\nimport { Store } from "@mstage/runtime";`)]), [
    'examples/a/images.ts imports @mstage/runtime: examples use only the public "mstage" API',
  ]);
});
