// `mstage graph` and `mstage init` through the built CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyFixture, mstage } from "./helpers/mstage-cli.ts";

const env = { MSTAGE_STORE: mkdtempSync(join(tmpdir(), "mstage-cmd-store-")) };

test("graph prints each stage with its base, its copy sources and whether it is an image or unused", () => {
  const dir = copyFixture("plan-basic");
  const r = mstage(dir, ["graph"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "tools  from scratch\napp    from scratch; copies from tools  [image]\nold    from scratch  [unused]\n");
});

test("graph --format dot and mermaid draw the copy edge and the external bases", () => {
  const dir = copyFixture("plan-bases");
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

test("init writes a commented starter images.ts that plans cleanly, and refuses to overwrite it", () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-init-"));
  const r = mstage(dir, ["init"], env);
  assert.equal(r.code, 0, r.stderr);
  const text = readFileSync(join(dir, "images.ts"), "utf8");
  assert.match(text, /^\/\/ images\.ts/);
  assert.match(text, /from "mstage"/);
  const p = mstage(dir, ["plan", "--offline"], env); // offline: the same answer with or without a network
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /\+ build  new: base docker\.io\/library\/alpine:3\.20 not resolved yet/);
  assert.match(p.stdout, /Plan: 2 new\./);
  const again = mstage(dir, ["init"], env);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /images\.ts already exists/);
  assert.ok(existsSync(join(dir, "images.ts")));
});
