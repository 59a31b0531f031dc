// Loading images.ts through the built CLI: bundling, the "mstage" import, exports as targets, and
// every error a user can make, each with its images.ts line.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyFixture, mstage } from "./helpers/mstage-cli.ts";
import { loadConfig } from "../packages/cli/src/config/load.ts";

const store = mkdtempSync(join(tmpdir(), "mstage-config-store-"));
const env = { MSTAGE_STORE: store };

/** Writes an images.ts whose error is on the line marked `// <-`; returns the dir and that line. */
function project(source: string): { dir: string; line: number } {
  const dir = mkdtempSync(join(tmpdir(), "mstage-config-"));
  const text = `import { stage, image, scratch, local, inline, oci, tarball, debian } from "mstage";\n${source}\n`;
  writeFileSync(join(dir, "images.ts"), text);
  const line = text.split("\n").findIndex((l) => l.includes("// <-")) + 1;
  assert.ok(line > 0, "test source needs a // <- marker");
  return { dir, line };
}

const cases: { name: string; source: string; message: RegExp }[] = [
  {
    name: "an unknown key, with a did-you-mean",
    source: `export const a = stage("app", { from: scratch(), cmnd: ["/app"] }); // <-`,
    message: /stage "app", key "cmnd": unknown key "cmnd" \(did you mean "cmd"\?\)/,
  },
  {
    name: "a key of the wrong type",
    source: `export const a = stage("app", { // <-\n  from: scratch(),\n  env: { PORT: 8080 as any },\n});`,
    message: /stage "app", key "env": wrong type: env.PORT must be a string, got a number \(8080\)/,
  },
  {
    name: "from that is not a base",
    source: `export const a = stage("app", { from: "alpine" as any }); // <-`,
    message: /stage "app", key "from": wrong type: .* got a string \("alpine"\) \(did you mean from: image\("alpine"\)\?\)/,
  },
  {
    name: "a copy destination that is not absolute",
    source: `export const a = stage("app", { from: scratch(), copy: { "etc/motd": inline("hi") } }); // <-`,
    message: /stage "app", key "copy": destination "etc\/motd" is not absolute: write the full path in the image, like "\/etc\/motd"/,
  },
  {
    name: "a duplicate stage name",
    source: `const one = stage("app", { from: scratch() });\nexport const two = stage("app", { from: scratch() }); // <-`,
    message: /stage "app": a stage named "app" is already defined at images.ts:2; stage names must be unique/,
  },
  {
    name: "a name that cannot be an image reference",
    source: `export const a = stage("My App", { from: scratch() }); // <-`,
    message: /stage "My App": the name "My App" cannot be part of an image reference/,
  },
  {
    name: "run on scratch() without a shell",
    source: `export const a = stage("app", { from: scratch(), run: "make" }); // <-`,
    message: /stage "app", key "run": scratch\(\) has no shell to run this with: copy one in and set "shell"/,
  },
  {
    name: "a path() that is not absolute",
    source: `const b = stage("build", { from: image("alpine:3.20"), run: "true" });\nexport const a = stage("app", { from: scratch(), copy: { "/x": b.path("out/x") } }); // <-`,
    message: /stage "build", key "path": path\("out\/x"\) is not absolute/,
  },
  {
    name: "a missing from",
    source: `export const a = stage("app", {} as any); // <-`,
    message: /stage "app", key "from": missing: every stage starts from a base/,
  },
  {
    name: "a bad local() option",
    source: `export const a = stage("app", { from: scratch(), copy: { "/x": local("./x", { mode: "755" as any }) } }); // <-`,
    message: /local\(\): "mode" must be permission bits like 0o755, got a string \("755"\)/,
  },
];

for (const c of cases) {
  test(`stage() error names the stage, key and images.ts line: ${c.name}`, () => {
    const { dir, line } = project(c.source);
    const r = mstage(dir, ["plan"], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^error: images\\.ts:${line}:\\d+: `), r.stderr);
    assert.match(r.stderr, c.message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack without -v");
  });
}

test("a syntax error shows images.ts:LINE:COL and the offending line", () => {
  // Stored as images.ts.broken so that `tsc` over the repository stays clean.
  const dir = copyFixture("config-syntax");
  renameSync(join(dir, "images.ts.broken"), join(dir, "images.ts"));
  const r = mstage(dir, ["plan"], env);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: images\.ts:5:17: Expected "}" but found "]"/);
  assert.match(r.stderr, /  5 \|   cmd: \["\/app"\] \]\n\s+\|\s+\^/);
});

test("an exception thrown by the config shows its message and a stack of the user's files only", () => {
  const dir = copyFixture("config-throws");
  const r = mstage(dir, ["plan"], env);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: names\.ts:3:30: need three app names/);
  assert.match(r.stderr, /if \(list\.length < 3\) throw new Error/);
  assert.match(r.stderr, /at names \(.*names\.ts:3:30\)/);
  assert.match(r.stderr, /images\.ts:4:\d+/);
  assert.doesNotMatch(r.stderr, /dist\/|node:internal|mstage\.mjs/);
  const verbose = mstage(dir, ["plan", "-v"], env);
  assert.match(verbose.stderr, /dist\/|node:internal/, "-v keeps mstage's own frames");
});

test("every exported stage is a target, also inside arrays and plain objects; stages from local imports are bundled", async () => {
  const dir = copyFixture("config-exports");
  const r = mstage(dir, ["plan", "--json"], env);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout) as { stages: { name: string; status: string; target: boolean }[] };
  const targets = plan.stages.filter((s) => s.target).map((s) => s.name).sort();
  assert.deepEqual(targets, ["lint", "svc-api", "svc-web"]);
  assert.equal(plan.stages.find((s) => s.name === "base")?.status, "new");
  assert.equal(plan.stages.find((s) => s.name === "unused")?.status, "unused");

  const loaded = await loadConfig(join(dir, "images.ts"));
  assert.deepEqual(loaded.dependencies.map((d) => d.slice(dir.length + 1)).sort(), ["images.ts", "lib/service.ts"]);
  assert.deepEqual(loaded.stages.map((s) => s.name), ["base", "svc-api", "svc-web", "lint", "unused"]);
});

test("the compile cache notices an edit to an imported file", () => {
  const dir = copyFixture("config-exports");
  assert.equal(mstage(dir, ["plan"], env).code, 0);
  const lib = join(dir, "lib/service.ts");
  writeFileSync(lib, readFileSync(lib, "utf8").replace("svc-${name}", "service-${name}"));
  const r = mstage(dir, ["plan", "--json"], env);
  const names = (JSON.parse(r.stdout) as { stages: { name: string }[] }).stages.map((s) => s.name);
  assert.ok(names.includes("service-api"), names.join());
});

test("a missing images.ts says how to make one", () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-config-"));
  const r = mstage(dir, ["plan"], env);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no config at .*images\.ts: run `mstage init`/);
});
