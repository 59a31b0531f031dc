import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { sha256Digest, type Digest } from "../oci/digest.ts";
import type { ImageConfig } from "../oci/types.ts";
import { commitLayerToStore } from "../layer/commit.ts";
import { compressLayer } from "../layer/compress.ts";
import { parseByteSize } from "./gc.ts";
import type { LayerRef, StageResult } from "./results.ts";
import { DigestMismatchError } from "@mstage/core";
import { Store } from "./store.ts";
import { withStore } from "./testing.ts";
import { ensureLayerExtracted } from "../layer/extract.ts";

/** Commits a fresh dir `up` holding `files` (name → content) as a layer of `store`. */
async function layerOf(store: Store, up: string, files: Record<string, string | Buffer>) {
  mkdirSync(up);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(up, name), content);
  return commitLayerToStore(store, up, { sourceDateEpoch: 0 });
}

const config: ImageConfig = { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } };

function result(key: string, layers: Array<{ diffId: Digest; size: number }>, stage = "s"): StageResult {
  return { key, layers, config, history: [], created: new Date().toISOString(), stage };
}

test("writeBlob stores bytes under their digest and verifies what it is promised", async () => {
  await withStore(async (store) => {
    const data = Buffer.from("hello blob");
    const d = sha256Digest(data);
    assert.deepEqual(await store.writeBlob(Readable.from([data]), d), { digest: d, size: data.length });
    assert.equal(readFileSync(store.blobPath(d), "utf8"), "hello blob");
    assert.equal(store.blobPath(d), join(store.root, "blobs/sha256", d.slice(7)));

    const wrong = sha256Digest("something else");
    await assert.rejects(store.writeBlob(Buffer.from("tampered"), wrong), DigestMismatchError);
    assert.equal(store.hasBlob(wrong), false, "a mismatching blob is not stored");
    assert.equal(store.hasBlob(sha256Digest("tampered")), false, "nor under its real digest");
    assert.deepEqual(readdirSync(join(store.root, "tmp")), [], "no temp file is left");
  });
});

test("writeBlob from a stream that fails midway stores nothing and leaves no temp file", async () => {
  await withStore(async (store) => {
    const failing = Readable.from(
      (async function* () {
        for (let i = 0; i < 40; i++) yield Buffer.alloc(1 << 20, i);
        throw new Error("source broke");
      })(),
    );
    await assert.rejects(store.writeBlob(failing), /source broke/);
    assert.deepEqual(readdirSync(join(store.root, "blobs/sha256")), []);
    assert.deepEqual(readdirSync(join(store.root, "tmp")), []);
  });
});

test("writeBlob skips a blob already present without reading the source", async () => {
  await withStore(async (store) => {
    const data = Buffer.from("present");
    const d = sha256Digest(data);
    await store.writeBlob(data);
    let read = false;
    const source = new Readable({
      read() {
        read = true;
        this.push(null);
      },
    });
    assert.deepEqual(await store.writeBlob(source, d, { size: data.length }), { digest: d, size: data.length });
    assert.equal(read, false);
  });
});

test("openBlob fails at the end of a stored blob whose bytes no longer match its digest", async () => {
  await withStore(async (store) => {
    const { digest } = await store.writeBlob(Buffer.from("original"));
    assert.equal(await text(store.openBlob(digest)), "original");
    writeFileSync(store.blobPath(digest), "corrupted");
    await assert.rejects(text(store.openBlob(digest)), DigestMismatchError);
    await assert.rejects(store.readBlob(digest), DigestMismatchError);
  });
});

test("results live at results/<hex of key>.json and are served only while their layers exist", async () => {
  await withStore(async (store, dir) => {
    const layer = await layerOf(store, join(dir, "up"), { f: "layer content" });
    const key = sha256Digest("stage key");
    assert.equal(await store.getResult(key), null);
    await store.putResult(key, result(key, [layer]));
    assert.ok(existsSync(join(store.root, "results", key.slice(7) + ".json")));
    assert.equal(store.resultPath(key), join(store.root, "results", key.slice(7) + ".json"));
    assert.deepEqual((await store.getResult(key))?.layers, [layer]);
    rmSync(store.blobPath(layer.diffId));
    assert.equal(await store.getResult(key), null, "a result whose layer is gone is not served");
  });
});

test("ensureLayerExtracted extracts once and rejects a layer that does not match its diff-id", async () => {
  await withStore(async (store, dir) => {
    const layer = await layerOf(store, join(dir, "up"), { f: "x" });
    let opened = 0;
    const open = () => (opened++, store.openBlob(layer.diffId));
    const [a, b] = await Promise.all([ensureLayerExtracted(store, layer.diffId, open), ensureLayerExtracted(store, layer.diffId, open)]);
    assert.equal(a, b);
    assert.equal(opened, 1, "concurrent callers share one extraction");
    assert.equal(readFileSync(join(a, "f"), "utf8"), "x");

    const other = sha256Digest("not this layer");
    await assert.rejects(ensureLayerExtracted(store, other, () => store.openBlob(layer.diffId)), DigestMismatchError);
    assert.equal(existsSync(store.layerDir(other)), false, "nothing appears under layers/");
    assert.deepEqual(readdirSync(join(store.root, "tmp")).filter((n) => n.includes("layer")), [], "the work dir is removed");
  });
});

test("ensureLayerExtracted finds the layer in the store by itself: its tar, else its gzip blob; a corrupt one never lands in layers/", async () => {
  await withStore(async (store, dir) => {
    const layer = await layerOf(store, join(dir, "up"), { f: "from gzip" });
    await compressLayer(store, layer.diffId);
    rmSync(store.blobPath(layer.diffId));
    assert.ok(store.hasLayer(layer.diffId), "a layer stored only as gzip is still usable");
    const dir1 = await ensureLayerExtracted(store, layer.diffId);
    assert.equal(readFileSync(join(dir1, "f"), "utf8"), "from gzip");

    const other = await layerOf(store, join(dir, "up2"), { f: "corrupt me" });
    const blob = readFileSync(store.blobPath(other.diffId));
    blob[514] ^= 1; // inside the file's content (the header is the first 512 bytes)
    writeFileSync(store.blobPath(other.diffId), blob);
    await assert.rejects(ensureLayerExtracted(store, other.diffId), DigestMismatchError);
    assert.equal(store.hasLayerDir(other.diffId), false);
  });
});

test("gc removes what no result references; --max-size drops the least recently used results first", async () => {
  await withStore(async (store, dir) => {
    const layers: LayerRef[] = [];
    for (const name of ["old", "mid", "new"]) {
      layers.push(await layerOf(store, join(dir, name), { [name]: Buffer.alloc(64 * 1024, name) }));
    }
    const keys = ["old", "mid", "new"].map((n) => sha256Digest(n));
    for (let i = 0; i < 3; i++) {
      await store.putResult(keys[i], result(keys[i], [layers[i]], ["old", "mid", "new"][i]));
      await ensureLayerExtracted(store, layers[i].diffId, () => store.openBlob(layers[i].diffId));
      const t = new Date(Date.now() - (3 - i) * 3600_000);
      utimesSync(store.resultPath(keys[i]), t, t);
    }
    const stray = await store.writeBlob(Buffer.from("unreferenced"));
    writeFileSync(join(store.root, "tmp", "99999999.1.abc.blob"), "left by a dead process");

    const dry = await store.gc({ dryRun: true });
    assert.equal(dry.removedBlobs, 1);
    assert.ok(store.hasBlob(stray.digest), "a dry run removes nothing");

    const plain = await store.gc();
    assert.deepEqual([plain.removedResults.length, plain.removedBlobs, plain.removedLayers, plain.removedTmp], [0, 1, 0, 1]);
    assert.equal(store.hasBlob(stray.digest), false);
    assert.deepEqual(store.list().map((r) => r.stage), ["new", "mid", "old"], "ls: most recently used first");

    // Room for about one result: the two least recently used go, with their blobs and layers.
    const shrunk = await store.gc({ maxSize: 200 * 1024 });
    assert.deepEqual(shrunk.removedResults.map((r) => r.stage), ["old", "mid"]);
    assert.equal(await store.getResult(keys[0]), null);
    assert.equal(store.hasLayerDir(layers[0].diffId), false);
    assert.equal(store.hasBlob(layers[1].diffId), false);
    assert.ok(await store.getResult(keys[2]), "the most recent result stays usable");
    assert.ok(shrunk.sizeAfter <= 200 * 1024, `store is ${shrunk.sizeAfter} bytes`);
  });
});

test("gc removes the package scans of layers and layer chains that no remaining result has, and keeps the others", async () => {
  await withStore(async (store, dir) => {
    const layers: LayerRef[] = [];
    for (const name of ["kept", "gone"]) {
      layers.push(await layerOf(store, join(dir, name), { [name]: name }));
    }
    const [kept, gone] = layers as [LayerRef, LayerRef];
    await store.putResult(sha256Digest("kept"), result(sha256Digest("kept"), [kept]));
    const scans = store.layout.attestationsDir;
    mkdirSync(scans, { recursive: true });
    const chain = (name: string, diffIds: Digest[] | undefined) => {
      const file = join(scans, `scan-${sha256Digest(name).slice(7)}.json`);
      writeFileSync(file, JSON.stringify({ version: 2, packages: [], files: [], ...(diffIds ? { layers: diffIds } : {}) }));
      return file;
    };
    for (const l of layers) writeFileSync(store.layout.layerScan(l.diffId), JSON.stringify({ version: 1, checksums: {}, go: {} }));
    const keptChain = chain("kept", [kept.diffId]);
    const goneChain = chain("both", [kept.diffId, gone.diffId]);
    const oldChain = chain("old", undefined);

    const r = await store.gc();
    assert.equal(r.removedAttestations, 3);
    assert.ok(existsSync(store.layout.layerScan(kept.diffId)), "the scan of a layer a result has stays");
    assert.ok(existsSync(keptChain), "the scan of a chain whose layers all stay, stays");
    assert.equal(existsSync(store.layout.layerScan(gone.diffId)), false, "the scan of a layer no result has goes");
    assert.equal(existsSync(goneChain), false, "a chain with a gone layer goes");
    assert.equal(existsSync(oldChain), false, "a chain scan that does not list its layers goes");
  });
});

test("gc waits for no one and refuses while a build holds the store; builds wait for gc", async () => {
  await withStore(async (store) => {
    const build = await store.lock("shared");
    await assert.rejects(store.gc({ timeoutMs: 0 }), /store is busy: mstage \(pid \d+\) is using it/);
    build.release();
    const gc = await store.lock("exclusive");
    await assert.rejects(store.lock("shared", { timeoutMs: 0 }), /mstage gc \(pid \d+\) is cleaning it/);
    gc.release();
    (await store.lock("shared")).release();
  });
});

test("a lock left by a dead process does not block", async () => {
  await withStore(async (store) => {
    const own = readlinkSync("/proc/self/ns/pid");
    writeFileSync(join(store.root, "locks", "exclusive"), `99999999.1 ${own}\n`);
    writeFileSync(join(store.root, "locks", "shared.99999998.1.abcd"), `99999998.1 ${own}\n`);
    const l = await store.lock("shared", { timeoutMs: 0 });
    l.release();
    const g = await store.lock("exclusive", { timeoutMs: 0 });
    g.release();
  });
});

test("a lock of a process in another pid namespace counts while its heartbeat is fresh, and not after", async () => {
  await withStore(async (store) => {
    const file = join(store.root, "locks", "exclusive");
    writeFileSync(file, "1.1 pid:[1]\n"); // pid 1 of some other pid namespace: its pid tells nothing here
    await assert.rejects(store.lock("shared", { timeoutMs: 0 }), /mstage gc \(pid 1\) is cleaning it/);
    const old = new Date(Date.now() - 120_000);
    utimesSync(file, old, old);
    (await store.lock("shared", { timeoutMs: 0 })).release();
  });
});

test("two processes writing the same blobs into one store concurrently both succeed and the store verifies", async () => {
  await withStore(async (store, dir) => {
    const script = join(dir, "writer.mts");
    writeFileSync(
      script,
      `import { Store } from ${JSON.stringify(new URL("./store.ts", import.meta.url).pathname)};
       import { ensureLayerExtracted } from ${JSON.stringify(new URL("../layer/extract.ts", import.meta.url).pathname)};
       const store = await Store.open(process.argv[2]);
       const out = [];
       for (let i = 0; i < 40; i++) {
         const data = Buffer.alloc(256 * 1024 + i, i);
         out.push((await store.writeBlob(data)).digest);
       }
       console.log(JSON.stringify(out));`,
    );
    const run = () =>
      new Promise<string[]>((resolve, reject) => {
        const p = spawn(process.execPath, ["--import", "tsx", script, store.root], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        p.stdout.on("data", (c) => (out += c));
        p.stderr.on("data", (c) => (err += c));
        p.on("close", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`writer exited ${code}: ${err}`))));
      });
    const [a, b] = await Promise.all([run(), run()]);
    assert.deepEqual(a, b);
    for (const d of a) {
      assert.equal(await text(store.openBlob(d as Digest)).then(() => "ok"), "ok", `${d} verifies`);
    }
    assert.equal(readdirSync(join(store.root, "blobs/sha256")).length, 40);
    assert.deepEqual(readdirSync(join(store.root, "tmp")), [], "no temp files are left behind");
  });
});

test("a writer killed mid-blob and mid-extraction leaves nothing a later run trusts, and gc clears its temp files", async () => {
  await withStore(async (store, dir) => {
    const layer = await layerOf(store, join(dir, "up"), Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`f${i}`, Buffer.alloc(64 * 1024, i)])));
    const key = sha256Digest("kept");
    await store.putResult(key, result(key, [layer]));
    const script = join(dir, "killed.mts");
    writeFileSync(
      script,
      `import { Store } from ${JSON.stringify(new URL("./store.ts", import.meta.url).pathname)};
       import { ensureLayerExtracted } from ${JSON.stringify(new URL("../layer/extract.ts", import.meta.url).pathname)};
       import { Readable } from "node:stream";
       const store = await Store.open(process.argv[2]);
       // A blob that never ends, and an extraction that is slowed down to be caught midway.
       store.writeBlob(Readable.from((async function* () { for (;;) { yield Buffer.alloc(1 << 20, 7); await new Promise((r) => setTimeout(r, 5)); } })()));
       const slow = Readable.from((async function* () { for await (const c of store.openBlob(process.argv[3])) { yield c; await new Promise((r) => setTimeout(r, 200)); } })());
       ensureLayerExtracted(store, process.argv[3], () => slow);
       setTimeout(() => console.log("busy"), 300);`,
    );
    const p = spawn(process.execPath, ["--import", "tsx", script, store.root, layer.diffId], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve) => p.stdout.once("data", () => resolve()));
    p.kill("SIGKILL");
    await new Promise((r) => p.once("close", r));

    assert.deepEqual(readdirSync(join(store.root, "blobs/sha256")), [layer.diffId.slice(7)], "no partial blob under blobs/");
    assert.deepEqual(readdirSync(join(store.root, "layers")), [], "no partial layer under layers/");
    assert.ok(readdirSync(join(store.root, "tmp")).length >= 2, "the dead writer's temp file and work dir are in tmp/");
    const r = await store.gc();
    assert.ok(r.removedTmp >= 2);
    assert.deepEqual(readdirSync(join(store.root, "tmp")), []);
    // The layer was never recorded as extracted, so a later run extracts it afresh.
    assert.equal(readFileSync(join(await ensureLayerExtracted(store, layer.diffId), "f1")).length, 64 * 1024);
  });
});

test("parseByteSize reads sizes as mstage prints them, and binary units", () => {
  assert.equal(parseByteSize("10G"), 10e9);
  assert.equal(parseByteSize("1.5 GB"), 1.5e9);
  assert.equal(parseByteSize("2GiB"), 2 * 1024 ** 3);
  assert.equal(parseByteSize("512"), 512);
  assert.equal(parseByteSize("ten"), null);
});

test("a layer's imported gzip blob wins over one compressed ahead, whichever is recorded first", async () => {
  await withStore(async (store) => {
    const diffId = sha256Digest(Buffer.from("the layer's tar"));
    const imported = await store.writeBlob(Buffer.from("the user's .tar.gz"));
    const ahead = await store.writeBlob(Buffer.from("mstage's own gzip"));
    // The compression ahead records first and the import right after, both in flight at once.
    const [a, b] = await Promise.all([store.recordCompressed(diffId, ahead, "gzip", { ifAbsent: true }), store.recordCompressed(diffId, imported, "gzip")]);
    assert.deepEqual([a.digest, b.digest], [ahead.digest, imported.digest]);
    assert.equal(store.compressedOf(diffId, "gzip")?.digest, imported.digest);
    // The import first, the compression ahead while it is still being written: the import's stays.
    const other = sha256Digest(Buffer.from("another layer's tar"));
    const [c, d] = await Promise.all([store.recordCompressed(other, imported, "gzip"), store.recordCompressed(other, ahead, "gzip", { ifAbsent: true })]);
    assert.deepEqual([c.digest, d.digest], [imported.digest, imported.digest]);
    assert.equal(store.compressedOf(other, "gzip")?.digest, imported.digest);
    // A record whose blob is gone does not count as present.
    const gone = sha256Digest(Buffer.from("a third layer's tar"));
    await store.recordCompressed(gone, { digest: sha256Digest(Buffer.from("never stored")), size: 3 }, "gzip");
    assert.equal((await store.recordCompressed(gone, ahead, "gzip", { ifAbsent: true })).digest, ahead.digest);
  });
});
