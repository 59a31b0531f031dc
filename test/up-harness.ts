// Shared by the `mstage up` end-to-end tests: runs the built CLI as a given user on a private copy
// of a project, with a store per user, and judges outputs with skopeo, umoci and runc.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runAs, testUsers, type RunResult } from "./helpers/users.ts";

export const MSTAGE_BIN = new URL("../packages/cli/bin/mstage.mjs", import.meta.url).pathname;
export const REPO = new URL("..", import.meta.url).pathname;

export { testUsers };

function uidOf(user: string): number {
  return Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
}

/** `userDir`s removed when the test `t` ends: a project dir first, e.g. ["project", "store"]. */
export function userDirsFor(t: { after(fn: () => void): void }, user: string, ...prefixes: string[]): string[] {
  return prefixes.map((prefix) => {
    const dir = userDir(user, prefix);
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  });
}

/** Two layouts' `ref` have the same layers and the same config (what a converted images.ts must build). */
export function sameImage(a: string, b: string, ref: string): void {
  const [x, y] = [a, b].map((l) => skopeoInspect(l, ref, true) as { rootfs: unknown; config: unknown; architecture: unknown; os: unknown });
  for (const k of ["rootfs", "config", "architecture", "os"] as const) {
    if (JSON.stringify(x![k]) !== JSON.stringify(y![k])) throw new Error(`${b}:${ref} differs from ${a}:${ref} in ${k}: ${JSON.stringify(y![k])} vs ${JSON.stringify(x![k])}`);
  }
}

/** A directory `user` owns (under /tmp, reachable by every test user). */
export function userDir(user: string, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `mstage-${prefix}-`));
  chmodSync(dir, 0o755);
  if (user !== testUsers()[0]!.name) chownSync(dir, uidOf(user), uidOf(user));
  return dir;
}

/** Copies a project (a fixture or an example) into a fresh dir owned by `user`. */
export function copyProject(src: string, user: string, prefix = "up"): string {
  const dir = userDir(user, prefix);
  cpSync(src, dir, { recursive: true, filter: (p) => !/\/(oci|\.mstage)$/.test(p) });
  if (user !== testUsers()[0]!.name) execFileSync("chown", ["-R", `${user}:${user}`, dir]);
  return dir;
}

/** Writes a file in a project as its owner would. */
export function writeAs(user: string, file: string, text: string): void {
  writeFileSync(file, text);
  if (user !== testUsers()[0]!.name) chownSync(file, uidOf(user), uidOf(user));
}

/**
 * A fresh project whose only file is `images` (as images.ts) and a store, both owned by `user` and
 * removed when the test ends; with the CLI that runs there.
 */
export function projectWith(t: { after(fn: () => void): void }, user: string, prefix: string, images: string): { project: string; store: string; mstage: Mstage } {
  const [project, store] = userDirsFor(t, user, prefix, `${prefix}-store`) as [string, string];
  writeAs(user, join(project, "images.ts"), images);
  return { project, store, mstage: mstageAs(user, project, store) };
}

/** projectWith, on a copy of test/fixtures/`fixture`. */
export function projectFrom(t: { after(fn: () => void): void }, user: string, fixture: string): { project: string; store: string; mstage: Mstage } {
  const project = copyProject(join(REPO, "test", "fixtures", fixture), user, fixture);
  const [store] = userDirsFor(t, user, `${fixture}-store`) as [string];
  t.after(() => rmSync(project, { recursive: true, force: true }));
  return { project, store, mstage: mstageAs(user, project, store) };
}

export interface Mstage {
  (args: string[], o?: { env?: Record<string, string> }): Promise<RunResult>;
  user: string;
  store: string;
}

/** The built CLI, run as `user` in `cwd`, with its own store. */
export function mstageAs(user: string, cwd: string, store: string): Mstage {
  const run = ((args: string[], o: { env?: Record<string, string> } = {}) =>
    runAs(user, [process.execPath, MSTAGE_BIN, ...args], {
      cwd,
      env: { MSTAGE_STORE: store, NO_COLOR: "1", ...(o.env ?? {}) },
      timeoutMs: 15 * 60_000,
    })) as Mstage;
  run.user = user;
  run.store = store;
  return run;
}

/** Fails with the command's whole output, so a broken build is readable in the test log. */
export function expectOk(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

/** The stages an `up --progress plain` built, sorted (its "[name] built in" lines). */
export function builtStages(r: RunResult): string[] {
  return [...r.stderr.matchAll(/\[([\w-]+)\] built in/g)].map((m) => m[1]!).sort();
}

/** Runs `fn` on layout `ref` unpacked as a runtime bundle, removed afterwards. */
export function inBundle(layout: string, ref: string, fn: (bundle: string) => void): void {
  const bundle = unpack(layout, ref);
  try {
    fn(bundle);
  } finally {
    rmSync(bundle, { recursive: true, force: true });
  }
}

export function skopeoInspect(layout: string, ref: string, config = false): Record<string, unknown> {
  const args = ["inspect", ...(config ? ["--config"] : []), `oci:${layout}:${ref}`];
  return JSON.parse(execFileSync("skopeo", args, { encoding: "utf8" }));
}

/** umoci-unpacks an image (as root, whoever built it) and returns the bundle dir. */
export function unpack(layout: string, ref: string): string {
  const bundle = mkdtempSync(join(tmpdir(), "mstage-bundle-"));
  rmSync(bundle, { recursive: true });
  execFileSync("umoci", ["unpack", "--image", `${layout}:${ref}`, bundle], { stdio: ["ignore", "ignore", "pipe"] });
  return bundle;
}

/** Every path in a bundle's rootfs, relative, sorted. */
export function listRootfs(bundle: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      out.push(r);
      if (lstatSync(join(dir, name)).isDirectory()) walk(join(dir, name), r);
    }
  };
  walk(join(bundle, "rootfs"), "");
  return out;
}

let runcSeq = 0;
/** Runs an unpacked bundle with runc (optionally other args / user) and returns its stdout. */
export function runBundle(bundle: string, o: { args?: string[] } = {}): { code: number; stdout: string; stderr: string } {
  const file = join(bundle, "config.json");
  const spec = JSON.parse(readFileSync(file, "utf8"));
  spec.process.terminal = false;
  if (o.args) spec.process.args = o.args;
  writeFileSync(file, JSON.stringify(spec));
  const id = `mstage-test-${process.pid}-${++runcSeq}`;
  const r = spawnSync("runc", ["run", id], { cwd: bundle, encoding: "utf8", timeout: 60_000 });
  spawnSync("runc", ["delete", "-f", id]);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A layout's index as ref → manifest digest (referrers, which have no ref, are left out). */
export function layoutRefs(layout: string): Record<string, string> {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  return Object.fromEntries(index.manifests.flatMap((m) => {
    const ref = m.annotations?.["org.opencontainers.image.ref.name"];
    return ref === undefined ? [] : [[ref, m.digest]];
  }));
}

/** Every file under `dir` with its size and mtime: a cheap fingerprint to show nothing changed. */
export function treeFingerprint(dir: string, skip: (rel: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const st = statSync(join(d, name), { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(join(d, name), r);
      else out.push(`${r} ${st.size} ${st.mtimeMs}`);
    }
  };
  if (existsSync(dir)) walk(dir, "");
  return out;
}

export function tool(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;
}

export function ensureDir(d: string): string {
  mkdirSync(d, { recursive: true });
  return d;
}
