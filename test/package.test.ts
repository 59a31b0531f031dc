// The published package as a new user meets it: the tarball `pnpm pack:mstage` makes is installed
// with plain npm into an empty prefix and an empty project, with a fresh HOME and nothing of this
// checkout on the PATH, and then `mstage init`, `plan`, `up` and the user's own `tsc` run there.
// npm fetches the package's real dependencies (and typescript, for the user's tsc) from the
// registry. The store is the test cache's, so only the first run anywhere pays for debian().
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { REPO, layoutRefs, skopeoInspect, tool } from "./up-harness.ts";
import { debianStore } from "./helpers/rootfs.ts";

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function exec(cmd: string, args: string[], o: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Result> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, stdio: ["ignore", "pipe", "pipe"], timeout: o.timeoutMs ?? 300_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, ms: performance.now() - t0 }));
  });
}

function ok(r: Result, what: string): Result {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** An environment that knows nothing of this checkout: a fresh HOME, no npm/pnpm variables, no node_modules/.bin. */
function userEnv(home: string, prefix: string): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? "")
    .split(delimiter)
    .filter((p) => p && !p.includes("node_modules") && !p.startsWith(REPO.replace(/\/$/, "")));
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|pnpm_|PNPM_|NODE_OPTIONS$|NODE_PATH$|MSTAGE_|XDG_)/i.test(k)) continue;
    env[k] = v;
  }
  return {
    ...env,
    HOME: home,
    PATH: [join(prefix, "bin"), ...path].join(delimiter),
    NO_COLOR: "1",
    MSTAGE_STORE: debianStore(),
    npm_config_update_notifier: "false",
    npm_config_fund: "false",
    npm_config_audit: "false",
  };
}

async function registryReachable(env: NodeJS.ProcessEnv, cwd: string): Promise<string | undefined> {
  const r = await exec("npm", ["view", "cac", "version"], { cwd, env, timeoutMs: 30_000 }).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message, ms: 0 }));
  return r.code === 0 ? undefined : `the npm registry is not reachable (npm view cac: ${r.stderr.trim().split("\n")[0]})`;
}

const VERSION = (JSON.parse(readFileSync(join(REPO, "packages/cli/package.json"), "utf8")) as { version: string }).version;

test("the packed tarball installs with npm where this repo was never seen; init, plan, up and the user's tsc work there", { timeout: 15 * 60_000 }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), "mstage-package-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const home = join(root, "home");
  const prefix = join(root, "prefix");
  const project = join(root, "my-images");
  for (const d of [home, prefix, project]) mkdirSync(d);
  const env = userEnv(home, prefix);
  const unreachable = await registryReachable(env, root);
  if (unreachable) return t.skip(unreachable);

  const packed = ok(await exec(process.execPath, [join(REPO, "scripts/pack.mjs"), "--out", root], { cwd: REPO, env: process.env }), "pack");
  const tgz = packed.stdout.trim().split("\n").at(-1)!;
  assert.equal(tgz, join(root, `mstage-${VERSION}.tgz`));

  const t0 = performance.now();
  const global = ok(await exec("npm", ["install", "--global", "--prefix", prefix, tgz], { cwd: root, env }), "npm install -g");
  const installed = join(prefix, "lib/node_modules/mstage");

  await t.test("the package holds what runs and names only registry dependencies", () => {
    const manifest = readFileSync(join(installed, "package.json"), "utf8");
    assert.doesNotMatch(manifest, /workspace:|@mstage\//);
    const pkg = JSON.parse(manifest) as { dependencies: Record<string, string>; devDependencies?: unknown };
    assert.equal(pkg.devDependencies, undefined);
    // Every package the bundle imports is a dependency npm installed, so no command fails later on a
    // chunk that this test does not load. The frontends load their parsers on first use, through
    // requireLazily(): those count too.
    const bundled = readdirSync(join(installed, "dist"), { recursive: true }).map(String).filter((f) => f.endsWith(".mjs"));
    const imported = new Set<string>();
    for (const f of bundled) {
      for (const m of readFileSync(join(installed, "dist", f), "utf8").matchAll(/(?:\bfrom|\bimport\(?|\brequireLazily\d*\()\s*["']((?:@[a-z0-9._-]+\/)?[a-z0-9][a-z0-9._-]*)(?:\/[^"']*)?["']/g)) {
        const spec = m[1]!;
        // "mstage" itself appears in the starter images.ts that init writes.
        if (spec === "mstage") continue;
        imported.add(spec);
      }
    }
    for (const dep of imported) {
      assert.ok(dep in pkg.dependencies, `the bundle imports ${dep}, which package.json does not name`);
      assert.ok(existsSync(join(installed, "node_modules", dep)) || existsSync(join(prefix, "lib/node_modules", dep)), `${dep} was installed`);
    }
    assert.deepEqual(readdirSync(installed).filter((f) => f !== "node_modules").sort(), ["README.md", "bin", "dist", "package.json"]);
    const sources = readdirSync(join(installed, "dist"), { recursive: true }).map(String).filter((f) => f.endsWith(".ts"));
    assert.deepEqual(sources, ["index.d.ts"], "no TypeScript sources, one types file");
    // Compiled by the build (no compiler or node-gyp run at install), for the platform it ran on.
    assert.ok(existsSync(join(installed, "dist", `listdir.${process.platform}-${process.arch}.node`)), "the native lister is in the package");
  });

  const doctor = ok(await exec("mstage", ["doctor"], { cwd: project, env }), "mstage doctor");
  assert.ok(doctor.stdout.includes(`✔ native directory lister: loaded ${join(installed, "dist", `listdir.${process.platform}-${process.arch}.node`)}`), doctor.stdout);

  const version = ok(await exec("mstage", ["--version"], { cwd: project, env }), "mstage --version");
  assert.match(version.stdout, new RegExp(`^mstage/${VERSION.replace(/\./g, "\\.")} `));

  const init = ok(await exec("mstage", ["init"], { cwd: project, env }), "mstage init");
  assert.match(init.stdout, /wrote images\.ts, package\.json, tsconfig\.json, \.gitignore/);
  const pkg = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as { type: string; devDependencies: Record<string, string> };
  assert.equal(pkg.type, "module");
  assert.equal(pkg.devDependencies.mstage, `^${VERSION}`);

  const plan = ok(await exec("mstage", ["plan"], { cwd: project, env }), "mstage plan");
  assert.match(plan.stdout, /^[+=] build /m);
  assert.match(plan.stdout, /^[+=] app /m);

  const up = await exec("mstage", ["up", "--progress", "plain"], { cwd: project, env, timeoutMs: 10 * 60_000 });
  const firstImage = performance.now() - t0;
  ok(up, "mstage up");
  assert.match(up.stdout, /done in .*: \d+ built, \d+ cached/);
  const refs = layoutRefs(join(project, "oci"));
  assert.deepEqual(Object.keys(refs), ["app"], "the build-only stage is not an output");
  t.diagnostic(`npm install -g ${(global.ms / 1000).toFixed(1)} s; from it to a first built image ${(firstImage / 1000).toFixed(1)} s (up ${(up.ms / 1000).toFixed(1)} s, ${/\d+ built/.exec(up.stdout)?.[0]})`);

  await t.test("every history entry is dated SOURCE_DATE_EPOCH, the debian() base's too", (t) => {
    if (!tool("skopeo")) return t.skip("skopeo missing: run .ci/setup");
    const config = skopeoInspect(join(project, "oci"), "app", true) as { created: string; history: { created?: string; created_by: string }[] };
    assert.equal(config.created, "1970-01-01T00:00:00Z");
    assert.match(config.history[0]!.created_by, /^mstage debian bookworm/);
    assert.deepEqual(config.history.map((h) => h.created), config.history.map(() => "1970-01-01T00:00:00Z"), "no undated entry (podman history would say 292 years ago)");
  });

  await t.test("the starter image runs its command", async () => {
    // In mstage's own sandbox, on the store's layers: examples.test.ts judges OCI outputs with runc.
    const run = ok(await exec("mstage", ["shell", "app", "--", "/usr/local/bin/hello"], { cwd: project, env }), "mstage shell");
    assert.equal(run.stdout.trim(), "hello from mstage");
  });

  await t.test("npm i -D puts the types in the project: tsc passes the starter and names a misspelled option", async () => {
    ok(await exec("npm", ["install", "--save-dev", tgz, "typescript@~5.9.3"], { cwd: project, env }), "npm install -D");
    assert.match(ok(await exec("npx", ["mstage", "--version"], { cwd: project, env }), "npx mstage").stdout, /^mstage\//);
    ok(await exec("npx", ["tsc", "--noEmit"], { cwd: project, env }), "tsc on the starter");

    const starter = readFileSync(join(project, "images.ts"), "utf8");
    writeFileSync(join(project, "images.ts"), starter.replace("labels:", "lables:"));
    const bad = await exec("npx", ["tsc", "--noEmit"], { cwd: project, env });
    assert.notEqual(bad.code, 0, "tsc flags the misspelled option");
    assert.match(bad.stdout, /images\.ts\(\d+,\d+\): error TS\d+: [^]*'lables' does not exist in type 'StageOptions'\. Did you mean to write 'labels'\?/);
    assert.doesNotMatch(bad.stdout, /node_modules\/mstage/, "no error inside mstage's own files");
    writeFileSync(join(project, "images.ts"), starter);

    // The config `tsc --init` writes (strict, verbatimModuleSyntax, no @types) accepts it too.
    rmSync(join(project, "tsconfig.json"));
    ok(await exec("npx", ["tsc", "--init"], { cwd: project, env }), "tsc --init");
    const tsconfig = readFileSync(join(project, "tsconfig.json"), "utf8");
    assert.doesNotMatch(tsconfig, /^\s*"allowImportingTsExtensions"/m);
    ok(await exec("npx", ["tsc", "--noEmit"], { cwd: project, env }), "tsc --noEmit under tsc --init's config");
  });

  await t.test("docs/api.md is what the packed types say (regenerate with pnpm docs:api)", async () => {
    const script = new URL("../scripts/api-docs.mjs", import.meta.url).href;
    const { apiPage, API_PAGE } = (await import(script)) as { apiPage(d: string): string; API_PAGE: string };
    const page = apiPage(readFileSync(join(installed, "dist/index.d.ts"), "utf8"));
    assert.ok(existsSync(API_PAGE), "docs/api.md exists");
    assert.equal(readFileSync(API_PAGE, "utf8"), page, "docs/api.md is stale: run `pnpm docs:api` and commit it");
  });
});
