// The native lister (packages/core/native/listdir.c), compiled here as the build compiles it, gives
// listDirectory's answer byte for byte, or none where listDirectory must answer (or throw) itself.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error: a build script, without types
import { buildListdir } from "../scripts/build.mjs";
import { listDirectory, loadLister, type NativeLister } from "../packages/core/src/local/walk-pool.ts";

let lister: NativeLister;
const work = fs.mkdtempSync(join(tmpdir(), "mstage-listdir-"));

before(async () => {
  const out = join(work, "listdir.node");
  const why = (await buildListdir(out)) as string | undefined;
  // .ci/setup installs gcc and libc6-dev: without them this is a broken setup, not a skip.
  assert.equal(why, undefined, `the native lister did not compile: ${why}`);
  lister = loadLister(out);
});

/** A fresh directory under the test's own. */
function dir(name: string): string {
  const d = join(work, name);
  fs.mkdirSync(d);
  return d;
}

function same(d: string): void {
  const native = lister.list(d);
  assert.ok(native, `the native lister left ${d} to listDirectory`);
  assert.deepEqual(native, listDirectory(fs, d));
}

test("every kind of entry, with the numbers and link targets Node gives", async () => {
  const d = dir("kinds");
  fs.writeFileSync(join(d, "file"), "content");
  fs.writeFileSync(join(d, "empty"), "");
  fs.linkSync(join(d, "file"), join(d, "hardlink"));
  fs.mkdirSync(join(d, "sub"));
  fs.symlinkSync("file", join(d, "link"));
  fs.symlinkSync("/nowhere/at/all", join(d, "dangling"));
  fs.symlinkSync("x/".repeat(2000) + "end", join(d, "long-link"));
  fs.symlinkSync("tärget-😀", join(d, "unicode-link"));
  assert.equal(spawnSync("mkfifo", [join(d, "fifo")]).status, 0);
  const server: Server = createServer();
  await new Promise<void>((up) => server.listen(join(d, "socket"), up));
  if (process.getuid!() === 0) assert.equal(spawnSync("mknod", [join(d, "null"), "c", "1", "3"]).status, 0);
  else console.log("# not root: no device node in the listing (mknod needs root)");
  // Times with nanoseconds: mtimeMs and ctimeMs are Node's own sec * 1e3 + nsec / 1e6.
  fs.utimesSync(join(d, "file"), 1_700_000_000.123456, 1_700_000_000.987654);
  fs.chmodSync(join(d, "empty"), 0o4755);
  try {
    same(d);
    const l = lister.list(d)!;
    assert.equal(l.links.length, 4);
    assert.equal(l.names.split("\0").length, process.getuid!() === 0 ? 11 : 10);
  } finally {
    server.close();
  }
});

test("names sort as JavaScript sorts them: uppercase, punctuation, spaces, two- and three-byte characters", () => {
  const d = dir("names");
  for (const name of ["b", "B", "a", "Z", "_", "-dash", "~", "name with space", "é", "e", "ü-file", "ß", "日本", "中", "Ω", "ｚ", "\u00a0nbsp", "a.b", "a-b", "10", "9", "\ufffd"]) {
    fs.writeFileSync(join(d, name), name);
  }
  same(d);
});

test("a thousand names and more: the buffers grow", () => {
  const d = dir("many");
  for (let i = 0; i < 3000; i++) fs.writeFileSync(join(d, `file-${String(i).padStart(5, "0")}-${"n".repeat(i % 200)}`), "");
  same(d);
});

test("names whose order or text Node may give differently are left to listDirectory", () => {
  // Beyond U+FFFF: UTF-16 sorts it below U+E000-U+FFFF, its bytes sort above.
  const astral = dir("astral");
  fs.writeFileSync(join(astral, "😀"), "");
  fs.writeFileSync(join(astral, "\uffee"), "");
  assert.equal(lister.list(astral), undefined);
  // Not UTF-8 at all: Node decodes it with a replacement character.
  const bytes = dir("bytes");
  fs.writeFileSync(Buffer.concat([Buffer.from(bytes + "/"), Buffer.from([0x66, 0xff, 0x6f])]), "");
  assert.equal(lister.list(bytes), undefined);
  // A symbolic link whose target is not UTF-8.
  const target = dir("target");
  fs.symlinkSync(Buffer.from([0x74, 0xc3, 0x28]), join(target, "link"));
  assert.equal(lister.list(target), undefined);
});

test("a directory gone is empty, as listDirectory has it; a file or an unreadable path is left to listDirectory's error", () => {
  same(join(work, "never-made"));
  const file = join(work, "a-file");
  fs.writeFileSync(file, "");
  assert.equal(lister.list(file), undefined);
  assert.throws(() => listDirectory(fs, file), { code: "ENOTDIR" });
  assert.equal(lister.list("/" + "x".repeat(5000)), undefined, "longer than PATH_MAX");
  if (process.getuid!() !== 0) {
    const closed = dir("closed");
    fs.chmodSync(closed, 0);
    assert.equal(lister.list(closed), undefined);
    assert.throws(() => listDirectory(fs, closed), { code: "EACCES" });
  } else console.log("# root: no unreadable directory to try (root reads every one)");
});
