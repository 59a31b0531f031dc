import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { local } from "../api/sources.ts";
import { UserError } from "../errors.ts";
import { hashLocal } from "./hash.ts";
import { StatCache } from "./statcache.ts";
import { walkPool } from "./walk-pool.ts";
import { projectIgnore, walkLocal, walkLocalParallel, walkLocalSync } from "./walk.ts";

function project(): string {
  const dir = mkdtempSync(join(tmpdir(), "mstage-hash-"));
  mkdirSync(join(dir, "src/sub"), { recursive: true });
  writeFileSync(join(dir, "src/a.txt"), "a\n");
  writeFileSync(join(dir, "src/sub/b.txt"), "b\n");
  writeFileSync(join(dir, "src/skip.tmp"), "tmp\n");
  symlinkSync("a.txt", join(dir, "src/link"));
  return dir;
}

const digest = async (dir: string, o: { exclude?: string[] } = {}) =>
  (await hashLocal("./src", dir, { exclude: o.exclude, projectIgnore: projectIgnore(dir) }, StatCache.open(undefined).source("src"))).digest;

test("the digest ignores mtime and the absolute directory", async () => {
  const a = project();
  const b = mkdtempSync(join(tmpdir(), "mstage-hash-other-"));
  cpSync(a, b, { recursive: true, verbatimSymlinks: true });
  utimesSync(join(b, "src/a.txt"), new Date(1), new Date(1));
  assert.equal((await digest(a)), (await digest(b)));
});

test("the digest changes with content, mode, symlink target and names", async () => {
  const dir = project();
  const seen = new Set([(await digest(dir))]);
  writeFileSync(join(dir, "src/a.txt"), "A\n");
  seen.add((await digest(dir)));
  chmodSync(join(dir, "src/sub/b.txt"), 0o755);
  seen.add((await digest(dir)));
  writeFileSync(join(dir, "src/c.txt"), "");
  seen.add((await digest(dir)));
  const link = join(dir, "src/link2");
  symlinkSync("x", link);
  seen.add((await digest(dir)));
  assert.equal(seen.size, 5);
});

test("exclude and .mstageignore leave files out of the digest and the file list", async () => {
  const dir = project();
  const full = (await digest(dir));
  assert.notEqual((await digest(dir, { exclude: ["*.tmp"] })), full);
  writeFileSync(join(dir, ".mstageignore"), "src/skip.tmp\n");
  assert.equal((await digest(dir)), (await digest(dir, { exclude: ["*.tmp"] })));
  const entries = await walkLocal(local("./src", { exclude: ["sub/"] }), dir);
  assert.deepEqual(entries.map((e) => [e.rel, e.type]), [["a.txt", "file"], ["link", "symlink"]]);
  assert.equal(entries[1].linkTarget, "a.txt");
});

test("a single-file source is one entry with rel \"\"", async () => {
  const dir = project();
  const entries = await walkLocal(local("src/a.txt"), dir);
  assert.deepEqual(entries.map((e) => [e.rel, e.type, e.size]), [["", "file", 2]]);
});

/** One plan's use of the stat cache in `cacheDir`: hash ./src, save; the files it read. */
async function planOnce(dir: string, cacheDir: string): Promise<{ digest: string; reads: number }> {
  const cache = StatCache.open(cacheDir);
  const { digest } = await hashLocal("./src", dir, {}, cache.source("src"));
  return { digest, reads: cache.reads };
}

test("the stat cache reads a file again only when its stat changed", async () => {
  const dir = project();
  const cacheDir = join(dir, "cache");
  assert.equal((await planOnce(dir, cacheDir)).reads, 3);
  assert.equal((await planOnce(dir, cacheDir)).reads, 0);
  // Same size, and the old mtime put back (as `cp -p`, `git checkout` or a fast editor can leave
  // it): the fingerprint still differs (ctime), so the file is read and the new bytes count.
  // Whole milliseconds, so that utimes can put back exactly the mtime the cache recorded.
  const file = join(dir, "src/a.txt");
  const t = new Date(1_700_000_000_000);
  utimesSync(file, t, t);
  const before = await planOnce(dir, cacheDir);
  assert.equal(before.reads, 1);
  const { size, mtimeMs } = statSync(file);
  writeFileSync(file, "A\n");
  utimesSync(file, t, t);
  assert.equal(statSync(file).size, size);
  assert.equal(statSync(file).mtimeMs, mtimeMs);
  const after = await planOnce(dir, cacheDir);
  assert.equal(after.reads, 1);
  assert.notEqual(after.digest, before.digest, "the new content changes the digest");
  assert.equal((await planOnce(dir, cacheDir)).reads, 0);
});

test("the stat cache follows files added, removed and changed out of walk order", async () => {
  const dir = project();
  const cacheDir = join(dir, "cache");
  await planOnce(dir, cacheDir);
  // A new first file puts every other one off its place in the file: still found, not read.
  writeFileSync(join(dir, "src/0.txt"), "new\n");
  rmSync(join(dir, "src/sub"), { recursive: true });
  assert.equal((await planOnce(dir, cacheDir)).reads, 1);
  const again = await planOnce(dir, cacheDir);
  assert.equal(again.reads, 0);
  const [file] = readdirSync(cacheDir);
  const text = readFileSync(join(cacheDir, file!), "latin1");
  assert.ok(text.includes("src/0.txt") && text.includes("src/a.txt"));
  assert.ok(!text.includes("src/sub/b.txt"), "a file that left the source leaves its cache");
  assert.equal(again.digest, (await digest(dir)), "the cached digest is the one read from the files");
});

test("a corrupt, torn or older stat cache is ignored and rewritten, never trusted", async () => {
  const dir = project();
  const cacheDir = join(dir, "cache");
  const { digest: want } = await planOnce(dir, cacheDir);
  const [name] = readdirSync(cacheDir);
  const file = join(cacheDir, name!);
  const good = readFileSync(file);
  for (const bad of [good.subarray(0, good.length - 3), Buffer.from('{"v":2,"files":{}}'), Buffer.alloc(0), Buffer.concat([good.subarray(0, 30), Buffer.alloc(40, 0xff), good.subarray(70)])]) {
    writeFileSync(file, bad);
    const r = await planOnce(dir, cacheDir);
    assert.equal(r.digest, want);
    assert.ok(r.reads >= 1, "the files are read again");
    assert.equal((await planOnce(dir, cacheDir)).reads, 0, "and the rewritten cache is trusted");
  }
  // The JSON file of the format before is removed, not read.
  writeFileSync(cacheDir + ".json", "{}");
  await planOnce(dir, cacheDir);
  assert.equal(existsSync(cacheDir + ".json"), false);
});

test("a missing source says so with its resolved path", async () => {
  const dir = project();
  await assert.rejects(hashLocal("./nope", dir, {}, StatCache.open(undefined).source("nope")), /\.\/nope: no such file or directory \(.*\/nope\)/);
});

test("the project's .mstage/ and its oci/ output layout are never part of a local(\".\") source", async () => {
  const dir = project();
  mkdirSync(join(dir, ".mstage"));
  writeFileSync(join(dir, ".mstage/state.json"), "{}");
  mkdirSync(join(dir, "oci"));
  writeFileSync(join(dir, "oci/oci-layout"), "{}");
  mkdirSync(join(dir, "sub/oci"), { recursive: true });
  writeFileSync(join(dir, "sub/oci/oci-layout"), "{}");
  const rels = (await walkLocal(local("."), dir)).map((e) => e.rel);
  assert.ok(!rels.some((r) => r.startsWith(".mstage") || r.startsWith("oci")), rels.join());
  assert.ok(rels.includes("sub/oci/oci-layout"), "only the project's own output is left out");
});

test("wildcards list each match like Docker's COPY; include keeps matches and the directories to them", () => {
  const dir = mkdtempSync(join(tmpdir(), "walk-glob-"));
  mkdirSync(join(dir, "sub/ldir/deep"), { recursive: true });
  writeFileSync(join(dir, "sub/lfile"), "1");
  writeFileSync(join(dir, "sub/ldir/deep/x"), "2");
  writeFileSync(join(dir, "sub/other"), "3");
  const rels = (path: string, o: Parameters<typeof walkLocalSync>[2] = {}) => walkLocalSync(path, dir, { glob: true, ...o }).map((e) => e.rel);
  assert.deepEqual(rels("sub/l*"), ["deep", "deep/x", "lfile"]);
  assert.deepEqual(rels("sub/lf?le"), [""], "one match is the source itself");
  assert.deepEqual(rels("sub/[!o]*"), ["deep", "deep/x", "lfile"]);
  assert.throws(() => rels("sub/zz*"), /sub\/zz\*: no files match/);
  assert.deepEqual(rels("sub", { include: ["x"] }), [], "anchored at the source, as BuildKit's include patterns: no top-level x");
  assert.deepEqual(rels("sub", { include: ["**/x"] }), ["ldir", "ldir/deep", "ldir/deep/x"]);
  assert.deepEqual(rels("sub", { include: ["/ldir/deep/x"] }), ["ldir", "ldir/deep", "ldir/deep/x"], "a leading / is the source root");
  assert.deepEqual(rels("sub", { include: ["ldir/**", "!ldir/deep/x", "l?ile"] }), ["ldir", "ldir/deep", "lfile"], "! excludes again; the last match decides");
  assert.deepEqual(rels("sub", { include: ["*"] }), ["ldir", "ldir/deep", "ldir/deep/x", "lfile", "other"], "a matched directory brings what is below it");
  assert.deepEqual(rels("sub", { include: ["ldir/"] }), ["ldir", "ldir/deep", "ldir/deep/x"]);
  assert.throws(() => walkLocalSync("sub/l*", dir, {}), /no such file or directory/, "without glob (a bind) the name is literal");
});

test("the threaded walk lists what the synchronous walk lists, in its order, with the same ignores", async () => {
  const dir = project();
  writeFileSync(join(dir, ".mstageignore"), "*.tmp\n!keep.tmp\nsrc/sub/deep/\n");
  mkdirSync(join(dir, "src/sub/deep"), { recursive: true });
  mkdirSync(join(dir, "src/z/y/x/w"), { recursive: true });
  mkdirSync(join(dir, "src/excluded/inner"), { recursive: true });
  writeFileSync(join(dir, "src/sub/deep/gone"), "");
  writeFileSync(join(dir, "src/keep.tmp"), "k");
  writeFileSync(join(dir, "src/z/y/x/w/leaf"), "leaf");
  writeFileSync(join(dir, "src/excluded/inner/f"), "");
  writeFileSync(join(dir, "src/é ü.txt"), "utf8 name");
  writeFileSync(join(dir, "src/B"), "capital sorts first");
  symlinkSync("../nowhere", join(dir, "src/sub/dangling"));
  chmodSync(join(dir, "src/B"), 0o600);
  execFileSync("mkfifo", [join(dir, "src/fifo")]);
  for (let i = 0; i < 60; i++) mkdirSync(join(dir, `src/many/d${i}`), { recursive: true }), writeFileSync(join(dir, `src/many/d${i}/f`), String(i));
  const o = { exclude: ["excluded"], projectIgnore: projectIgnore(dir) };
  const shape = (e: { rel: string; type: string; mode: number; size: number; linkTarget?: string }) => [e.rel, e.type, e.mode, e.size, e.linkTarget];
  const sync = walkLocalSync("./src", dir, o).map(shape);
  // Listed here until the listing thread is up, then there: both ways give the same list.
  for (const when of ["thread starting", "thread up"]) {
    const threaded: unknown[] = [];
    await walkLocalParallel("./src", dir, o, (e) => threaded.push(shape(e)));
    assert.deepEqual(threaded, sync, when);
    await walkPool()?.started;
  }
  const rels = sync.map((e) => e[0]);
  for (const r of ["B", "keep.tmp", "sub/dangling", "z/y/x/w/leaf", "é ü.txt", "many/d59/f"]) assert.ok(rels.includes(r), r);
  for (const r of ["skip.tmp", "sub/deep", "excluded", "fifo"]) assert.ok(!rels.includes(r), r);
});

test("large files, read two buffers at a time, get the digest of their bytes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-hash-large-"));
  try {
    mkdirSync(join(dir, "src"));
    // Past the 4 MiB reads and not a multiple of them; exactly two of them; one under; one byte over.
    const sizes = { odd: (9 << 20) + 7, even: 8 << 20, under: (4 << 20) - 1, over: (4 << 20) + 1 };
    const want: string[] = [];
    for (const [name, size] of Object.entries(sizes)) {
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4096) data[i] = (i / 4096) % 251;
      writeFileSync(join(dir, "src", name), data);
      want.push(createHash("sha256").update(data).digest("hex"));
    }
    const r = await hashLocal("./src", dir, { projectIgnore: projectIgnore(dir) }, StatCache.open(undefined).source("src"));
    // Each entry's fingerprint is its mode and the first 16 hex digits of its content's sha256.
    for (const hex of want) assert.ok(r.files.includes(`:${hex.slice(0, 16)}"`), `${hex} in ${r.files}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a name that is not UTF-8 is an error from either walk, wherever it is listed; one the source excludes is left out", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-hash-utf8-"));
  for (let i = 0; i < 40; i++) mkdirSync(join(dir, `src/d${i}`), { recursive: true }), writeFileSync(join(dir, `src/d${i}/f`), String(i));
  // Node writes names as UTF-8; the shell makes the others. A valid U+FFFD beside it is a name like any.
  execFileSync("sh", ["-c", "touch \"src/d37/$(printf 'n\\377')\" \"src/d37/$(printf 'n\\357\\277\\275')\""], { cwd: dir });
  const error = (e: unknown) => e instanceof UserError && /^src: d37\/n\\xff is a file name that is not UTF-8/.test(e.message);
  try {
    assert.throws(() => walkLocalSync("src", dir, {}), error);
    // A wildcard that matches it, as Docker's COPY src/d37/* would.
    assert.throws(() => walkLocalSync("src/d37/*", dir, { glob: true }), (e: unknown) => e instanceof UserError && /^src\/d37\/\*: src\/d37\/n\\xff is a file name that is not UTF-8/.test(e.message));
    assert.deepEqual(walkLocalSync("src/d3[0-6]/*", dir, { glob: true }).length, 7, "one it does not match is no error");
    for (const when of ["thread starting", "thread up"]) {
      await assert.rejects(walkLocalParallel("src", dir, {}, () => {}), error, when);
      await walkPool()?.started;
    }
    const rels: string[] = [];
    await walkLocalParallel("src", dir, { exclude: ["d37/n?"] }, (e) => rels.push(e.rel));
    assert.ok(rels.includes("d37/f") && !rels.some((r) => r.startsWith("d37/n")), rels.join(" "));
    rmSync(join(dir, "src/d37/n\uFFFD"));
    execFileSync("sh", ["-c", "rm \"src/d37/$(printf 'n\\377')\" && touch \"src/d37/$(printf 'n\\357\\277\\275')\""], { cwd: dir });
    assert.ok(walkLocalSync("src", dir, {}).some((e) => e.rel === "d37/n\uFFFD"), "a U+FFFD that is UTF-8 is a name");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a source that had many files walks on threads, to the same digest, and reads nothing when warm", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-hash-many-"));
  // Long names: the cache (1.3 MB) is more than the one window of it read at a time.
  const sub = (d: number) => `src/d${d}-${"long".repeat(40)}`;
  for (let d = 0; d < 11; d++) {
    mkdirSync(join(dir, sub(d)), { recursive: true });
    for (let f = 0; f < 500; f++) writeFileSync(join(dir, `${sub(d)}/f${f}`), `${d}/${f}\n`);
  }
  // Names the threaded walk's lines write byte by byte, or hand to JSON.stringify.
  mkdirSync(join(dir, 'src/dir "é"'));
  for (const n of ['quote".txt', "back\\slash", "new\nline", "é ü.txt", "emoji 😀"]) writeFileSync(join(dir, "src/d3-" + "long".repeat(40), n), n), writeFileSync(join(dir, 'src/dir "é"', n), n);
  const cacheDir = join(dir, "cache");
  const cold = await planOnce(dir, cacheDir);
  assert.equal(cold.reads, 5510);
  const warm = await planOnce(dir, cacheDir);
  assert.deepEqual(warm, { digest: cold.digest, reads: 0 });
  const fingerprints = async () => (await hashLocal("./src", dir, {}, StatCache.open(cacheDir).source("src"))).files;
  assert.equal(await fingerprints(), (await hashLocal("./src", dir, {}, StatCache.open(undefined).source("src"))).files, "the threaded walk's fingerprints are the synchronous walk's");
  // Same size and mtime, new bytes: the threads' stat still tells (ctime).
  const file = join(dir, `${sub(7)}/f250`);
  const { mtime } = statSync(file);
  writeFileSync(file, "7/25X\n");
  utimesSync(file, mtime, mtime);
  const changed = await planOnce(dir, cacheDir);
  assert.equal(changed.reads, 1);
  assert.notEqual(changed.digest, cold.digest);
  assert.equal(changed.digest, await digest(dir), "the digest of a walk without any cache");
  const [cacheFile] = readdirSync(cacheDir);
  assert.ok(statSync(join(cacheDir, cacheFile!)).size > 1 << 20);
  // A file removed near the start: the rest are found further on, not read again.
  rmSync(join(dir, `${sub(0)}/f1`));
  assert.equal((await planOnce(dir, cacheDir)).reads, 0);
  assert.equal((await planOnce(dir, cacheDir)).reads, 0);
});

test("a warm plan's digest and fingerprints are the documented lines, byte for byte, for any name", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-hash-names-"));
  const names = ["plain.txt", 'quote".txt', "back\\slash", "new\nline", "tab\there", "é ü.txt", "emoji 😀", "del\x7f", "\u2028sep"];
  mkdirSync(join(dir, "src/dir"), { recursive: true });
  for (const n of names) writeFileSync(join(dir, "src", n), `bytes of ${n}\n`), writeFileSync(join(dir, "src/dir", n), n);
  chmodSync(join(dir, "src/plain.txt"), 0o755);
  symlinkSync('target "quoted"\n', join(dir, "src/link"));
  // The lines as hash.ts documents them, made the plain way.
  const digestLines: string[] = [];
  const fileLines: string[] = [];
  for (const e of walkLocalSync("./src", dir, {})) {
    const name = JSON.stringify(e.rel);
    const m = e.mode.toString(8);
    const content = e.type === "file" ? createHash("sha256").update(readFileSync(e.abs)).digest("hex") : e.type === "symlink" ? e.linkTarget! : "";
    digestLines.push(e.type === "symlink" ? `${name} symlink ${m} ${JSON.stringify(content)}\n` : `${name} ${e.type} ${m} "${content}"\n`);
    fileLines.push(e.type === "symlink" ? `${name},${JSON.stringify(`s${m}:${content}`)}\n` : `${name},"${e.type[0]}${m}:${content.slice(0, 16)}"\n`);
  }
  const want = "sha256:" + createHash("sha256").update(digestLines.join("")).digest("hex");
  const cacheDir = join(dir, "cache");
  for (const run of ["cold", "warm"]) {
    const cache = StatCache.open(cacheDir);
    const d = await hashLocal("./src", dir, {}, cache.source("src"));
    assert.equal(cache.reads, run === "cold" ? names.length * 2 : 0, run);
    assert.equal(d.digest, want, run);
    assert.equal(d.files, fileLines.join(""), run);
  }
});
