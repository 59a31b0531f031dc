import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { DigestMismatchError, HostileLayerError } from "@mstage/core";
import { parseDigest } from "../oci/digest.ts";
import type { Store } from "../store/store.ts";
import { withStore } from "../store/testing.ts";
import { CorruptLayerError } from "./apply.ts";
import { tarOf } from "./testing.ts";
import { stageLayer, type LayerToUnpack } from "./unpack.ts";

const sha = (b: Buffer) => parseDigest(`sha256:${createHash("sha256").update(b).digest("hex")}`);

/** The gzip layer of `tar`, as a pull would describe it, and its body in small chunks. */
function layerOf(tar: Buffer): { layer: LayerToUnpack; body: () => Readable } {
  const gz = gzipSync(tar);
  const chunks: Buffer[] = [];
  for (let off = 0; off < gz.length; off += 1000) chunks.push(gz.subarray(off, off + 1000));
  return { layer: { digest: sha(gz), diffId: sha(tar), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", size: gz.length }, body: () => Readable.from(chunks) };
}

/** Every entry below `dir`: mode, owner, mtime, and content, link target or device. */
function listing(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const p = join(rel, name);
    const st = lstatSync(join(dir, p));
    const what = st.isDirectory() ? "dir" : st.isSymbolicLink() ? `-> ${readlinkSync(join(dir, p))}` : st.isCharacterDevice() ? `char ${st.rdev}` : readFileSync(join(dir, p), "utf8");
    // A whiteout is a link to a device made at extraction: its time is that moment's.
    out.push(`${p} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.isCharacterDevice() ? "" : st.mtimeMs} ${what}`);
    if (st.isDirectory()) out.push(...listing(dir, p));
  }
  return out;
}

const tmpEntries = (store: Store) => readdirSync(join(store.root, "tmp"));

test("a layer extracted on the worker thread is the same tree, blob and diff-id as one extracted in place", async () => {
  const tar = tarOf([
    { name: "etc/", type: "directory", mode: 0o755, mtime: 1000 },
    { name: "etc/hostname", body: "box\n", mode: 0o600, uid: 1, gid: 2, mtime: 2000 },
    { name: "bin/", type: "directory", mode: 0o755 },
    { name: "bin/sh", body: "#!\n", mode: 0o755 },
    { name: "bin/ash", type: "symlink", linkname: "sh" },
    { name: "etc/.wh.gone" },
  ]);
  const { layer, body } = layerOf(tar);
  await withStore(async (store) => {
    const inThread = await stageLayer(store, body(), layer, { what: "layer a", workerFrom: Infinity });
    const onWorker = await stageLayer(store, body(), layer, { what: "layer a", workerFrom: 0 });
    assert.deepEqual(listing(onWorker.dir), listing(inThread.dir));
    assert.ok(listing(onWorker.dir).some((l) => l.startsWith("etc/hostname 600 1:2 2000000 box")), listing(onWorker.dir).join("\n"));
    assert.deepEqual(readFileSync(onWorker.blobFile), readFileSync(inThread.blobFile));
  });
});

test("on the worker thread a hostile entry and a corrupt stream fail with applyLayer's own errors and leave nothing", async () => {
  await withStore(async (store) => {
    const hostile = layerOf(tarOf([{ name: "ok", body: "x" }, { name: "../escape", body: "y" }]));
    await assert.rejects(stageLayer(store, hostile.body(), hostile.layer, { what: "layer h", workerFrom: 0 }), (e: unknown) => {
      assert.ok(e instanceof HostileLayerError, String(e));
      assert.equal(e.entry, "../escape");
      assert.match(e.message, /layer entry "\.\.\/escape": ".." would leave the target; refusing to extract this layer/);
      return true;
    });
    assert.deepEqual(tmpEntries(store), []);

    // A gzip stream cut short, described by its own digest: the blob is what was asked for, the tar is not.
    const gz = gzipSync(tarOf([{ name: "big", body: "z".repeat(100_000) }]));
    const cut = gz.subarray(0, gz.length - 40);
    const layer = { digest: sha(cut), diffId: sha(Buffer.from("unused")), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", size: cut.length };
    await assert.rejects(stageLayer(store, Readable.from([cut]), layer, { what: "layer c", workerFrom: 0 }), (e: unknown) => {
      assert.ok(e instanceof CorruptLayerError, String(e));
      assert.match(e.message, /^layer c is not a valid gzip-compressed tar: its gzip stream is truncated/);
      return true;
    });
    assert.deepEqual(tmpEntries(store), []);
  });
});

test("a layer's staging starts a sync of the store's filesystem every writebackEvery bytes received and once the blob is in, without waiting for any", async () => {
  const files = Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, body: createHash("sha256").update(String(i)).digest("hex").repeat(40) }));
  const { layer, body } = layerOf(tarOf(files));
  await withStore(async (store) => {
    let started = 0;
    let finished = 0;
    // A sync that never ends until the staging is over: staging must not wait for it.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    store.syncFilesystem = () => {
      started++;
      return held.then(() => void finished++);
    };
    const staged = await stageLayer(store, body(), layer, { what: "layer w", workerFrom: 0, writebackEvery: 2500, writebackTailMs: 2 ** 31 });
    assert.equal(started, Math.floor(layer.size! / 2500) + 1, `${layer.size} bytes in 1000-byte chunks`);
    assert.equal(finished, 0);
    release();
    await held;
    assert.ok(readdirSync(staged.dir).includes("f19"));
  });
});

test("on the worker thread the diff-id is the main thread's hash of the tar the worker inflated: files of many chunks are whole, and a lying diff_id is refused", async () => {
  // 200 KiB and 3 MiB files (written from their chunks with writev) around tiny ones, over 1 MiB
  // of zlib output each: the tar reaches the main thread in several pieces.
  const mid = Buffer.alloc(200 << 10, "m");
  const big = Buffer.from(Array.from({ length: 3 << 20 }, (_, i) => (i * 7) & 0xff));
  const tar = tarOf([
    { name: "a", body: "1" },
    { name: "mid", body: mid },
    { name: "big", body: big },
    { name: "z", body: "2" },
  ]);
  const { layer, body } = layerOf(tar);
  await withStore(async (store) => {
    const staged = await stageLayer(store, body(), layer, { what: "layer m", workerFrom: 0 });
    assert.deepEqual(readFileSync(join(staged.dir, "mid")), mid);
    assert.deepEqual(readFileSync(join(staged.dir, "big")), big);
    assert.equal(readFileSync(join(staged.dir, "z"), "utf8"), "2");
    const lie = { ...layer, diffId: sha(Buffer.from("another tar")) };
    await assert.rejects(stageLayer(store, body(), lie, { what: "layer m", workerFrom: 0 }), (e: unknown) => {
      assert.ok(e instanceof DigestMismatchError, String(e));
      assert.match(e.message, new RegExp(layer.diffId.slice(7)));
      return true;
    });
  });
});

test("on the worker thread a main thread that stops hashing for a while holds the worker back, and the layer still arrives whole with its diff-id", async () => {
  // 320 MiB of tar, five times TAR_IN_FLIGHT, from about a MB of gzip: the worker inflates far
  // faster than this thread, stalled below, takes the pieces.
  const big = Buffer.alloc(320 << 20, "0123456789abcdef");
  const { layer, body } = layerOf(tarOf([{ name: "big", body: big }, { name: "after", body: "x" }]));
  await withStore(async (store) => {
    const source = body();
    const ended = new Promise((r) => source.once("end", r));
    const staging = stageLayer(store, source, layer, { what: "layer s", workerFrom: 0 });
    // Once the whole body is posted, this thread is busy for 2 s: no "tar" message is taken, and
    // what the worker posts meanwhile waits in the port's queue, in this process's memory.
    await ended;
    await new Promise((r) => setTimeout(r, 100));
    const before = process.memoryUsage.rss();
    let peak = before;
    const until = Date.now() + 2000;
    while (Date.now() < until) peak = Math.max(peak, process.memoryUsage.rss());
    const staged = await staging;
    // Held to TAR_IN_FLIGHT: ~100 MB more at most (the pieces and the worker's own buffers); without
    // the bound the queue grew by ~350 MB in those 2 s.
    assert.ok(peak - before < 200 << 20, `memory grew by ${((peak - before) / 1048576).toFixed(0)} MB while the main thread took nothing`);
    assert.equal(readFileSync(join(staged.dir, "after"), "utf8"), "x");
    assert.ok(readFileSync(join(staged.dir, "big")).equals(big));
  });
});
