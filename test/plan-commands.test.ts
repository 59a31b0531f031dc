// `mstage graph` and `mstage init` through the built CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyFixture, mstage } from "./helpers/mstage-cli.ts";
import { planBasesProject } from "./helpers/plan-bases.ts";

const env = { MSTAGE_STORE: mkdtempSync(join(tmpdir(), "mstage-cmd-store-")) };

test("graph prints each stage with its base, its copy sources and whether it is an image or unused", () => {
  const dir = copyFixture("plan-basic");
  const r = mstage(dir, ["graph"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "tools  from scratch\napp    from scratch; copies from tools  [image]\nold    from scratch  [unused]\n");
});

test("graph --format dot and mermaid draw the copy edge and the external bases", () => {
  const dir = planBasesProject();
  const dot = mstage(dir, ["graph", "--format", "dot"], env);
  assert.equal(dot.code, 0, dot.stderr);
  assert.match(dot.stdout, /^digraph mstage \{/);
  assert.match(dot.stdout, /"base:image docker.io\/library\/golang:1.22" -> "from-image";/);
  const basic = copyFixture("plan-basic");
  assert.match(mstage(basic, ["graph", "--format", "dot"], env).stdout, /"tools" -> "app" \[style=dashed, label="copy"\];/);
  const mermaid = mstage(basic, ["graph", "--format", "mermaid"], env);
  assert.match(mermaid.stdout, /^graph LR\n/);
  assert.match(mermaid.stdout, /s_tools -\.copy\.-> s_app/);
  const bad = mstage(basic, ["graph", "--format", "svg"], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--format must be one of text, dot, mermaid, got "svg"/);
});

test("init writes a starter on debian() that plans cleanly, with package.json, tsconfig.json and .gitignore, and overwrites nothing", () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-init-"));
  const r = mstage(dir, ["init"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^wrote images\.ts, package\.json, tsconfig\.json, \.gitignore\n/);
  const text = readFileSync(join(dir, "images.ts"), "utf8");
  assert.match(text, /^\/\/ images\.ts/);
  assert.match(text, /from "mstage"/);
  assert.match(text, /debian\(\{ suite: "bookworm"/, "no registry image: a Debian mirror is enough");
  assert.doesNotMatch(text, /image\(/);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { type: string; devDependencies: Record<string, string> };
  assert.equal(pkg.type, "module");
  assert.match(pkg.devDependencies.mstage ?? "", /^\^\d+\.\d+\.\d+/);
  const tsconfig = JSON.parse(readFileSync(join(dir, "tsconfig.json"), "utf8")) as { include: string[]; compilerOptions: Record<string, unknown> };
  assert.deepEqual(tsconfig.include, ["images.ts"]);
  assert.equal(tsconfig.compilerOptions.allowImportingTsExtensions, undefined);
  assert.match(readFileSync(join(dir, ".gitignore"), "utf8"), /^\.mstage\/$/m);
  const p = mstage(dir, ["plan", "--offline"], env); // offline: the same answer with or without a network
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /^\+ build +new/m);
  assert.match(p.stdout, /Plan: 2 new\./);

  const again = mstage(dir, ["init"], env);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /images\.ts already exists, and so do package\.json, tsconfig\.json, \.gitignore: nothing to write/);
  assert.equal(readFileSync(join(dir, "images.ts"), "utf8"), text);

  // A repository that has its own package.json keeps it byte for byte; the rest is added.
  const own = mkdtempSync(join(tmpdir(), "mstage-init-own-"));
  const mine = '{ "name": "mine", "scripts": { "build": "make" } }\n';
  writeFileSync(join(own, "package.json"), mine);
  const r2 = mstage(own, ["init"], env);
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, /wrote images\.ts, tsconfig\.json, \.gitignore\nkept package\.json/);
  assert.equal(readFileSync(join(own, "package.json"), "utf8"), mine);
  assert.ok(existsSync(join(own, "images.ts")));
});
