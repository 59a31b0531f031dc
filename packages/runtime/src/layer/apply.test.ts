import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, lstatSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { HostileLayerError } from "@mstage/core";
import { applyLayer, CorruptLayerError } from "./apply.ts";
import { encodeHeader, END_OF_ARCHIVE } from "./tar-header.ts";
import { tarOf, type Entry } from "./testing.ts";


/** A sandbox: `target` to extract into, `outside` beside it holding a secret that must stay put. */
function scene() {
  const dir = mkdtempSync(join(tmpdir(), "mstage-apply-"));
  const target = join(dir, "target");
  const outside = join(dir, "outside");
  mkdirSync(target);
  mkdirSync(outside);
  writeFileSync(join(outside, "secret"), "do not touch\n");
  const snapshot = () => ({ top: readdirSync(dir).sort(), outside: readdirSync(outside).sort(), secret: readFileSync(join(outside, "secret"), "utf8") });
  const before = snapshot();
  return {
    dir,
    target,
    outside,
    assertOutsideUntouched() {
      assert.deepEqual(snapshot(), before, "nothing outside the target changed");
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `fn` on a fresh scene, removed afterwards whatever happens. */
async function inScene(fn: (s: ReturnType<typeof scene>) => Promise<void>): Promise<void> {
  const s = scene();
  try {
    await fn(s);
  } finally {
    s.cleanup();
  }
}

const hostile: Array<{ what: string; entries: (outside: string) => Entry[]; entry: string | RegExp }> = [
  { what: "a .. entry", entries: () => [{ name: "../evil", body: "x" }], entry: "../evil" },
  { what: "a .. in the middle", entries: () => [{ name: "a/../../evil", body: "x" }], entry: "a/../../evil" },
  { what: "an absolute name", entries: () => [{ name: "/tmp/evil", body: "x" }], entry: "/tmp/evil" },
  {
    what: "a file written through an absolute symlink",
    entries: (outside) => [{ name: "link", type: "symlink", linkname: outside }, { name: "link/evil", body: "x" }],
    entry: "link/evil",
  },
  {
    what: "a file written through a relative symlink",
    entries: () => [{ name: "up", type: "symlink", linkname: "../outside" }, { name: "up/evil", body: "x" }],
    entry: "up/evil",
  },
  {
    what: "a file replacing a file through a symlinked dir",
    entries: () => [{ name: "up", type: "symlink", linkname: "../outside" }, { name: "up/secret", body: "overwritten" }],
    entry: "up/secret",
  },
  {
    what: "a hardlink to a file outside by ..",
    entries: () => [{ name: "hl", type: "link", linkname: "../outside/secret" }],
    entry: "hl",
  },
  {
    what: "a hardlink to an absolute path",
    entries: (outside) => [{ name: "hl", type: "link", linkname: join(outside, "secret") }],
    entry: "hl",
  },
  {
    what: "a hardlink through a symlink",
    entries: () => [{ name: "up", type: "symlink", linkname: "../outside" }, { name: "hl", type: "link", linkname: "up/secret" }],
    entry: "hl",
  },
  {
    what: "a whiteout through a symlink",
    entries: () => [{ name: "up", type: "symlink", linkname: "../outside" }, { name: "up/.wh.secret" }],
    entry: "up/.wh.secret",
  },
  {
    what: "an opaque marker through a symlink",
    entries: () => [{ name: "up", type: "symlink", linkname: "../outside" }, { name: "up/.wh..wh..opq" }],
    entry: "up/.wh..wh..opq",
  },
  {
    what: "a directory created through a symlink",
    entries: () => [{ name: "up", type: "symlink", linkname: "../outside" }, { name: "up/newdir/", type: "directory", mode: 0o755 }],
    entry: "up/newdir/",
  },
];

for (const mode of ["merge", "overlay"] as const) {
  for (const h of hostile) {
    test(`apply (${mode}) rejects ${h.what}, names the entry, and writes nothing outside`, async () => {
      await inScene(async (s) => {
      const tar = tarOf(h.entries(s.outside));
      await assert.rejects(applyLayer(Readable.from(tar), s.target, { mode }), (e: unknown) => {
        assert.ok(e instanceof HostileLayerError, `a HostileLayerError, got ${String(e)}`);
        assert.equal((e as HostileLayerError).entry, h.entry);
        assert.ok((e as Error).message.includes(JSON.stringify(h.entry)), (e as Error).message);
        return true;
      });
      s.assertOutsideUntouched();
      });
    });
  }
}

test("apply replaces a symlink to outside with the entry's own file, leaving the symlink's target alone", async () => {
  await inScene(async (s) => {
  symlinkSync(join(s.outside, "secret"), join(s.target, "f"));
  await applyLayer(Readable.from(tarOf([{ name: "f", body: "inside" }])), s.target, { mode: "merge" });
  assert.equal(readFileSync(join(s.target, "f"), "utf8"), "inside");
  assert.ok(lstatSync(join(s.target, "f")).isFile());
  s.assertOutsideUntouched();
  });
});

test("apply reads gzip and plain tars alike and returns the digest of the uncompressed tar", async () => {
  await inScene(async (s) => {
  const tar = tarOf([{ name: "d/", type: "directory", mode: 0o755 }, { name: "d/f", body: "hello" }]);
  const want = "sha256:" + createHash("sha256").update(tar).digest("hex");
  const plain = await applyLayer(Readable.from(tar), join(s.target), { mode: "merge" });
  mkdirSync(join(s.dir, "t2"));
  const gz = await applyLayer(Readable.from(gzipSync(tar)), join(s.dir, "t2"), { mode: "merge" });
  assert.equal(plain.diffId, want);
  assert.equal(gz.diffId, want);
  assert.equal(readFileSync(join(s.dir, "t2/d/f"), "utf8"), "hello");
  });
});

test("apply reads a zstd tar (zstd's magic), and a damaged one is a CorruptLayerError naming zstd", async () => {
  await inScene(async (s) => {
  const tar = tarOf([{ name: "d/", type: "directory", mode: 0o755 }, { name: "d/f", body: "zstd body" }]);
  const want = "sha256:" + createHash("sha256").update(tar).digest("hex");
  const zst = spawnSync("zstd", ["-q", "-c", "-3"], { input: tar }).stdout;
  const got = await applyLayer(Readable.from(zst), s.target, { mode: "merge" });
  assert.equal(got.diffId, want);
  assert.equal(readFileSync(join(s.target, "d/f"), "utf8"), "zstd body");
  mkdirSync(join(s.dir, "t2"));
  const cut = zst.subarray(0, zst.length - 6);
  await assert.rejects(applyLayer(Readable.from(cut), join(s.dir, "t2"), { mode: "merge", what: "layer X" }), (e: unknown) => {
    assert.ok(e instanceof CorruptLayerError, String(e));
    assert.match((e as Error).message, /^layer X is not a valid zstd-compressed tar: /);
    return true;
  });
  });
});

test("merge mode: a whiteout deletes a lower file, an opaque marker empties a lower dir but keeps this layer's entries", async () => {
  await inScene(async (s) => {
  mkdirSync(join(s.target, "keep/sub"), { recursive: true });
  writeFileSync(join(s.target, "keep/old"), "old");
  writeFileSync(join(s.target, "gone"), "x");
  const tar = tarOf([
    { name: ".wh.gone" },
    { name: "keep/", type: "directory", mode: 0o755 },
    { name: "keep/new", body: "new" },
    { name: "keep/.wh..wh..opq" },
  ]);
  await applyLayer(Readable.from(tar), s.target, { mode: "merge" });
  assert.equal(existsSync(join(s.target, "gone")), false);
  assert.deepEqual(readdirSync(join(s.target, "keep")), ["new"]);
  });
});

test("apply skips device nodes with one note naming them", async () => {
  await inScene(async (s) => {
  const notes: string[] = [];
  const dev = encodeHeader({ name: "dev/null", type: "file", mode: 0o666, uid: 0, gid: 0, size: 0, mtime: 0 });
  dev[156] = 0x33; // '3': character device
  // Recompute the checksum after changing the type flag.
  dev.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of dev) sum += b;
  dev.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  const tar = Buffer.concat([tarOf([{ name: "dev/", type: "directory", mode: 0o755 }]).subarray(0, 512), dev, END_OF_ARCHIVE]);
  await applyLayer(Readable.from(tar), s.target, { mode: "merge", onNote: (m) => notes.push(m) });
  assert.equal(existsSync(join(s.target, "dev/null")), false);
  assert.equal(notes.length, 1);
  assert.match(notes[0], /skipped 1 device node\(s\) \(dev\/null\)/);
  });
});

for (const mode of ["overlay", "merge"] as const) {
  test(`apply (${mode}) gives small files, created several at a time, their exact mode, owner, time and the last entry's content`, async () => {
    await inScene(async (s) => {
      const root = process.geteuid?.() === 0;
      const files: Entry[] = [
        { name: "suid", body: "a", mode: 0o4755 },
        { name: "sgid", body: "b", mode: 0o2755 },
        { name: "group-writable", body: "c", mode: 0o664 },
        { name: "read-only", body: "d", mode: 0o444 },
        { name: "none", body: "e", mode: 0o000 },
        ...(root ? [{ name: "theirs-suid", body: "f", mode: 0o4755, uid: 1234, gid: 5678 }] : []),
      ];
      const many: Entry[] = Array.from({ length: 200 }, (_, i) => ({ name: `d/f${i}`, body: `first ${i}`, mtime: 1000 + i }));
      const tar = tarOf([
        ...files.map((e) => ({ ...e, mtime: 77 })),
        { name: "d/", type: "directory", mode: 0o755 },
        ...many,
        // A second entry of a name still being written, a hardlink to one, a dir replaced by a symlink.
        { name: "d/f3", body: "second 3", mtime: 5 },
        { name: "d/hard", type: "link", linkname: "d/f4" },
        { name: "gone/", type: "directory", mode: 0o755 },
        ...Array.from({ length: 50 }, (_, i) => ({ name: `gone/g${i}`, body: "x" })),
        { name: "gone", type: "symlink", linkname: "d" },
      ]);
      await applyLayer(Readable.from(tar), s.target, { mode });
      for (const e of files) {
        const st = lstatSync(join(s.target, e.name));
        assert.equal(st.mode & 0o7777, e.mode, `${e.name}: mode ${(st.mode & 0o7777).toString(8)}`);
        assert.equal(st.mtimeMs, 77_000, e.name);
        assert.equal(readFileSync(join(s.target, e.name), "utf8"), e.body);
        if (root) assert.deepEqual([st.uid, st.gid], [e.uid ?? 0, e.gid ?? 0], e.name);
      }
      assert.equal(readFileSync(join(s.target, "d/f3"), "utf8"), "second 3");
      assert.equal(lstatSync(join(s.target, "d/f3")).mtimeMs, 5000);
      assert.equal(readFileSync(join(s.target, "d/f199"), "utf8"), "first 199");
      assert.equal(lstatSync(join(s.target, "d/f199")).mtimeMs, 1_199_000);
      assert.equal(lstatSync(join(s.target, "d/hard")).ino, lstatSync(join(s.target, "d/f4")).ino);
      assert.ok(lstatSync(join(s.target, "gone")).isSymbolicLink());
      assert.equal(readdirSync(join(s.target, "d")).length, 201);
      s.assertOutsideUntouched();
    });
  });
}

test("overlay mode on an empty target: a later entry replaces an earlier one of the same name, and a 4 MiB setuid file keeps its bytes and mode", async () => {
  await inScene(async (s) => {
    const big = Array.from({ length: 1 << 16 }, (_, i) => i.toString(16).padStart(64, ".")).join("");
    const tar = tarOf([
      { name: "a", body: "first" },
      { name: "a/", type: "directory", mode: 0o755 },
      { name: "a/f", body: "in a" },
      { name: "b", body: "file" },
      { name: "b", type: "symlink", linkname: "a" },
      { name: "c", body: "one" },
      { name: "c", body: "two" },
      { name: "bin/tool", body: big, mode: 0o4755 },
    ]);
    await applyLayer(Readable.from(tar), s.target, { mode: "overlay" });
    assert.ok(lstatSync(join(s.target, "a")).isDirectory());
    assert.equal(readFileSync(join(s.target, "a/f"), "utf8"), "in a");
    assert.ok(lstatSync(join(s.target, "b")).isSymbolicLink());
    assert.equal(readFileSync(join(s.target, "c"), "utf8"), "two");
    assert.equal(readFileSync(join(s.target, "bin/tool"), "latin1"), big);
    assert.equal(lstatSync(join(s.target, "bin/tool")).mode & 0o7777, 0o4755);
    s.assertOutsideUntouched();
  });
});
