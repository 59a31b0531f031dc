// The README's images.ts example is real: it loads and plans.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mstage } from "./helpers/mstage-cli.ts";

test("the README's images.ts example plans cleanly", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(example, "README has a ```ts block");
  assert.ok(example.split("\n").length <= 17, "the example stays about 15 lines");
  const dir = mkdtempSync(join(tmpdir(), "mstage-readme-"));
  writeFileSync(join(dir, "images.ts"), example);
  writeFileSync(join(dir, "main.go"), "package main\n\nfunc main() { println(\"hello\") }\n");
  const r = mstage(dir, ["plan", "--offline"], { MSTAGE_STORE: mkdtempSync(join(tmpdir(), "mstage-readme-store-")) });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\+ build  new: base docker\.io\/library\/golang:1\.22 not resolved yet \(run mstage up\)\n\+ hello  new\n/);
});
