// `mstage plan` through the built CLI: statuses and the specific reason for each change, the
// summary, --json, --detailed-exitcode, target selection, and a stat cache that reads no file twice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MSTAGE_BIN, copyFixture, mstage } from "./helpers/mstage-cli.ts";

interface JsonPlan {
  stages: { name: string; status: string; reasons: string[]; target: boolean; layerKey: string | null; configKey: string | null }[];
  changes: boolean;
  filesRead: number;
}

/** `mstage up` in `dir`, which must succeed. */
function up(dir: string, env: Record<string, string>): void {
  const r = mstage(dir, ["up", "-q"], env);
  assert.equal(r.code, 0, r.stderr);
}

let template: { dir: string; store: string } | undefined;

/**
 * A built copy of the plan-basic fixture with its own store: built once by a real `mstage up`, then
 * copied (cp -a keeps the store's mapped owners) for each test, and a no-op `up` in the copy warms
 * its stat cache as it would a user's.
 */
async function builtProject(): Promise<{ dir: string; store: string; env: Record<string, string> }> {
  if (!template) {
    const t = { dir: copyFixture("plan-basic"), store: mkdtempSync(join(tmpdir(), "mstage-plan-store-")) };
    up(t.dir, { MSTAGE_STORE: t.store });
    template = t;
  }
  const dir = mkdtempSync(join(tmpdir(), "mstage-plan-basic-"));
  const store = mkdtempSync(join(tmpdir(), "mstage-plan-store-"));
  for (const [from, to] of [[template.dir, dir], [template.store, store]]) {
    const r = spawnSync("cp", ["-a", `${from}/.`, to], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  }
  const env = { MSTAGE_STORE: store };
  up(dir, env);
  return { dir, store, env };
}

function plan(dir: string, env: Record<string, string>, args: string[] = []): JsonPlan {
  const r = mstage(dir, ["plan", "--json", ...args], env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as JsonPlan;
}

function entry(p: JsonPlan, name: string) {
  const e = p.stages.find((s) => s.name === name);
  assert.ok(e, `no stage ${name} in plan`);
  return e;
}

function edit(dir: string, file: string, from: string, to: string): void {
  const path = join(dir, file);
  const text = readFileSync(path, "utf8");
  assert.ok(text.includes(from), `${file} does not contain ${from}`);
  writeFileSync(path, text.replace(from, to));
}

test("a fresh project plans every needed stage as new and the unused one as unused", () => {
  const dir = copyFixture("plan-basic");
  const env = { MSTAGE_STORE: mkdtempSync(join(tmpdir(), "mstage-plan-store-")) };
  const r = mstage(dir, ["plan", "--detailed-exitcode"], env);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stdout, /^\+ tools  new\n\+ app    new\n· old    unused\nPlan: 2 new, 1 unused\.\n$/);
});

test("a built project plans as cached, exits 0 with --detailed-exitcode, and reads no file contents", async () => {
  const { dir, env } = await builtProject();
  const r = mstage(dir, ["plan", "--detailed-exitcode"], env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^= tools  cached\n= app    cached\n· old    unused\nPlan: nothing to build \(2 cached, 1 unused\)\.\n$/);
  const p = plan(dir, env);
  assert.equal(p.changes, false);
  assert.equal(p.filesRead, 0);
});

test('plan says "local ./src/main.go changed" when the file changes, and the stage copying from it says "upstream tools changed"', async () => {
  const { dir, env } = await builtProject();
  writeFileSync(join(dir, "src/main.go"), "package main\n\nfunc main() { println(1) }\n");
  const p = plan(dir, env);
  assert.deepEqual(entry(p, "tools"), { ...entry(p, "tools"), status: "rebuild", reasons: ["local ./src/main.go changed"] });
  assert.equal(entry(p, "app").status, "rebuild");
  assert.deepEqual(entry(p, "app").reasons, ["upstream tools changed"]);
  const r = mstage(dir, ["plan", "--detailed-exitcode"], env);
  assert.equal(r.code, 2);
  assert.match(r.stdout, /~ tools  rebuild: local \.\/src\/main\.go changed\n/);
  assert.match(r.stdout, /Plan: 2 to rebuild, 1 unused\./);
});

test("plan names added and removed local files", async () => {
  const { dir, env } = await builtProject();
  writeFileSync(join(dir, "src/util.go"), "package main\n");
  rmSync(join(dir, "src/go.mod"));
  assert.deepEqual(entry(plan(dir, env), "tools").reasons, ["local ./src/util.go added", "local ./src/go.mod removed"]);
});

test("touching a file without changing it keeps the stage cached (the file is read once to check)", async () => {
  const { dir, env } = await builtProject();
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(dir, "src/main.go"), later, later);
  const p = plan(dir, env);
  assert.equal(entry(p, "tools").status, "cached");
  assert.equal(p.changes, false);
  assert.equal(p.filesRead, 1);
  assert.equal(plan(dir, env).filesRead, 0, "the next plan trusts the stat cache again");
});

test("files matched by .mstageignore do not count", async () => {
  const { dir, env } = await builtProject();
  writeFileSync(join(dir, "src/debug.log"), "noise\n");
  assert.equal(entry(plan(dir, env), "tools").status, "cached");
});

test('plan says "run script changed" when run changes', async () => {
  const { dir, env } = await builtProject();
  edit(dir, "images.ts", `run: "cp /src/main.go /main.go"`, `run: "cp /src/main.go /main.go && true"`);
  assert.deepEqual(entry(plan(dir, env), "tools").reasons, ["run script changed"]);
});

test('plan says "env CGO_ENABLED changed" when an env value changes', async () => {
  const { dir, env } = await builtProject();
  edit(dir, "images.ts", `CGO_ENABLED: "0"`, `CGO_ENABLED: "1"`);
  const p = plan(dir, env);
  assert.equal(entry(p, "tools").status, "rebuild");
  assert.deepEqual(entry(p, "tools").reasons, ["env CGO_ENABLED changed"]);
});

test("changing only cmd and labels is config only, and runs nothing upstream", async () => {
  const { dir, env } = await builtProject();
  edit(dir, "images.ts", `cmd: ["/bin/app"],\n  labels: { version: "1" }`, `cmd: ["/bin/app", "--serve"],\n  labels: { version: "2" }`);
  const p = plan(dir, env);
  assert.equal(entry(p, "tools").status, "cached");
  assert.equal(entry(p, "app").status, "config");
  assert.deepEqual(entry(p, "app").reasons, ["config only: cmd, labels"]);
  const r = mstage(dir, ["plan"], env);
  assert.match(r.stdout, /~ app    config only: cmd, labels\n/);
  assert.match(r.stdout, /Plan: 1 config only, 1 cached, 1 unused\./);
});

test("an added exported stage is new; exporting the unused one makes it needed", async () => {
  const { dir, env } = await builtProject();
  writeFileSync(join(dir, "images.ts"), readFileSync(join(dir, "images.ts"), "utf8") + `export const extra = stage("extra", { from: app, cmd: ["/bin/extra"] });\nexport { old };\n`);
  const p = plan(dir, env);
  assert.equal(entry(p, "extra").status, "new");
  assert.equal(entry(p, "old").status, "new");
  assert.equal(entry(p, "app").status, "cached");
});

test("a config-only change upstream is a config-only change for the stage built on it", async () => {
  const { dir, env } = await builtProject();
  writeFileSync(join(dir, "images.ts"), readFileSync(join(dir, "images.ts"), "utf8") + `export const child = stage("child", { from: app });\n`);
  up(dir, env);
  edit(dir, "images.ts", `labels: { version: "1" }`, `labels: { version: "2" }`);
  const p = plan(dir, env);
  assert.deepEqual(entry(p, "app").reasons, ["config only: labels"]);
  assert.equal(entry(p, "child").status, "config");
  assert.deepEqual(entry(p, "child").reasons, ["config only: config inherited from app"]);
});

test("reverting an edit whose result is still in the store rebuilds nothing but rewrites the image", async () => {
  const { dir, env } = await builtProject();
  const original = readFileSync(join(dir, "src/main.go"), "utf8");
  writeFileSync(join(dir, "src/main.go"), original + "// edited\n");
  up(dir, env);
  writeFileSync(join(dir, "src/main.go"), original);
  const p = plan(dir, env);
  assert.equal(entry(p, "tools").status, "config");
  assert.deepEqual(entry(p, "tools").reasons, ["local ./src/main.go changed", "result found in the store"]);
  assert.equal(entry(p, "app").status, "config");
  assert.equal(p.changes, true);
});

test('a stage whose result left the store says "not in store"', async () => {
  const { dir, env, store } = await builtProject();
  const key = entry(plan(dir, env), "app").layerKey!;
  rmSync(join(store, "results", `${key}.json`));
  assert.deepEqual(entry(plan(dir, env), "app"), { ...entry(plan(dir, env), "app"), status: "rebuild", reasons: ["not in store"] });
});

test("an intermediate stage missing from the store is rebuilt while the stage built on it stays cached", async () => {
  const { dir, env, store } = await builtProject();
  const key = entry(plan(dir, env), "tools").layerKey!;
  rmSync(join(store, "results", `${key}.json`));
  const p = plan(dir, env);
  assert.equal(entry(p, "tools").status, "rebuild");
  assert.deepEqual(entry(p, "tools").reasons, ["not in store"]);
  assert.equal(entry(p, "app").status, "cached");
});

test("targets chosen on the command line limit the plan; an unknown one gets a did-you-mean", async () => {
  const { dir, env } = await builtProject();
  const p = plan(dir, env, ["tools"]);
  assert.equal(entry(p, "tools").target, true);
  assert.equal(entry(p, "app").status, "unused");
  const r = mstage(dir, ["plan", "tols"], env);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: no stage named "tols" \(did you mean "tools"\?\); stages: tools, app, old/);
});

test("a missing local source is an error naming the stage, key and path", async () => {
  const { dir, env } = await builtProject();
  rmSync(join(dir, "src"), { recursive: true });
  const r = mstage(dir, ["plan"], env);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: images\.ts:5:\d+: stage "tools", key "copy": local \.\/src: no such file or directory/);
});

test("the native lister and Node's fs list a large local source alike: the same layer key, and a stat cache one wrote matches the other's listing", () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-plan-lister-"));
  writeFileSync(join(dir, "images.ts"), `import { stage, scratch, local } from "mstage";\nexport const app = stage("app", { from: scratch(), copy: { "/src": local("./src") } });\n`);
  // Enough directories that the listing threads (not only the walk's own thread) list most of them.
  for (let d = 0; d < 60; d++) {
    mkdirSync(join(dir, "src", `d${d}`), { recursive: true });
    for (let f = 0; f < 200; f++) writeFileSync(join(dir, "src", `d${d}`, `f${f}`), `${d}/${f}\n`);
  }
  const names = join(dir, "src", "names");
  mkdirSync(names);
  for (const name of ["B", "a", "é", "e", "日本", "name with space", "~"]) writeFileSync(join(names, name), name);
  // Beyond U+FFFF: this directory is listed by Node's fs either way.
  writeFileSync(join(names, "😀"), "");
  symlinkSync("a", join(names, "link"));
  symlinkSync("../d0/f0", join(names, "up-link"));
  const store = mkdtempSync(join(tmpdir(), "mstage-plan-store-"));
  const js = { MSTAGE_STORE: store, MSTAGE_LISTDIR: "js" };
  const native = { MSTAGE_STORE: store, MSTAGE_LISTDIR: "" };
  assert.equal(entry(plan(dir, native), "app").layerKey, entry(plan(dir, js), "app").layerKey);
  up(dir, js);
  const p = plan(dir, native);
  assert.equal(entry(p, "app").status, "cached");
  assert.equal(p.filesRead, 0, "every file's size, times and inode as Node's lstat has them");
  // Which lister ran: the native one stats each entry relative to its directory's descriptor.
  const relativeStats = (env: Record<string, string>) => {
    const trace = join(dir, "trace");
    const r = spawnSync("strace", ["-f", "-qq", "-e", "trace=newfstatat", "-o", trace, process.execPath, MSTAGE_BIN, "plan", "-q"], { cwd: dir, env: { ...process.env, ...env }, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return readFileSync(trace, "utf8").split("\n").filter((l) => /newfstatat\(\d+, "[^"]/.test(l)).length;
  };
  assert.ok(relativeStats(native) >= 12_000, "the native lister listed the tree");
  assert.ok(relativeStats(js) < 1_000, "MSTAGE_LISTDIR=js listed it with Node's fs");
});
