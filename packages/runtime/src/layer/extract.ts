// Extracting a layer into the store: its tar (plain or gzip) applied in overlay-lower format in the
// store's tmp/, checked against its diff-id, and renamed into layers/ once whole; and a tarball()
// base's file made a layer of the store, blob and extracted dir in one read.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { open, rm, type FileHandle } from "node:fs/promises";
import { PassThrough, type Readable } from "node:stream";
import { digestOf, type Digest } from "../oci/digest.ts";
import { DigestMismatchError } from "@mstage/core";
import type { LayerRef } from "../store/results.ts";
import type { Store } from "../store/store.ts";
import { syncTree } from "../store/atomic-files.ts";
import { applyLayer } from "./apply.ts";
import { sniffCompression } from "./decompress.ts";
import { WORKER_FROM, applyInWorker } from "./unpack.ts";

/** Extractions under way in this process, per store and diff-id: one runs, the others wait for it. */
const extracting = new WeakMap<Store, Map<string, Promise<string>>>();

/**
 * The layer extracted in overlay-lower format, extracting it once if needed from `open()` (plain
 * or gzip tar), or by default from the store: the uncompressed blob, else its recorded gzip blob.
 * The tar must hash to `diffId` (so the default source is read without a second digest check);
 * extraction happens in tmp/ and appears by one rename, so a concurrent or interrupted extraction
 * never leaves a half layer under layers/.
 */
export async function ensureLayerExtracted(
  store: Store,
  diffId: Digest,
  open?: () => Readable,
  opts: { onNote?: (msg: string) => void; what?: string } = {},
): Promise<string> {
  if (store.hasLayerDir(diffId)) return store.layerDir(diffId);
  let running = extracting.get(store);
  if (!running) extracting.set(store, (running = new Map()));
  const pending = running.get(diffId);
  if (pending) return pending;
  const work = (async () => {
    const tmp = store.tmpDir("layer");
    try {
      const { diffId: got } = await applyLayer(open ? open() : store.openLayerTar(diffId), tmp, { mode: "overlay", onNote: opts.onNote, what: opts.what ?? `layer ${diffId}` });
      if (got !== diffId) throw new DigestMismatchError(diffId, got, `layer ${diffId}`);
      // Durable before it is placed: a dir under the layer's name is built on without a look inside.
      await syncTree(tmp, store.layout.tmpDir);
      return store.placeLayerDir(diffId, tmp);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  })();
  running.set(diffId, work);
  try {
    return await work;
  } finally {
    running.delete(diffId);
  }
}

/**
 * Makes the tar file `file` (plain, gzip or zstd) a layer of the store as it is, reading it once:
 * each chunk is written to a temp blob and, in the same pass, applied to a temp dir (overlay-lower
 * format). A plain tar is its own layer blob (its digest is its diff-id); a compressed one is kept
 * as that compression's blob of the layer, so export reuses it instead of compressing again. A
 * hostile or corrupt tar is refused as a pulled layer is, and nothing is placed unless the whole
 * tar applied; then one sync makes both durable before they are renamed into place.
 */
export async function importTarLayer(store: Store, file: string, opts: { what: string; onNote?: (msg: string) => void; /** Default WORKER_FROM. */ workerFrom?: number }): Promise<LayerRef> {
  const input = await open(file, "r");
  const blobFile = store.tmpPath("blob");
  const dir = store.tmpDir("layer");
  let out: FileHandle | undefined;
  try {
    const head = Buffer.alloc(4);
    const compression = sniffCompression(head.subarray(0, (await input.read(head, 0, 4, 0)).bytesRead));
    const tar = new PassThrough({ highWaterMark: CHUNK });
    // apply's own pipeline reports the error; this keeps a late one from being unhandled.
    tar.on("error", () => {});
    let failed: { error: unknown } | undefined;
    // A large tar is extracted on a worker thread, so this thread reads and writes the blob meanwhile.
    const apply = (await input.stat()).size >= (opts.workerFrom ?? WORKER_FROM) ? applyInWorker : applyLayer;
    const applying = apply(tar, dir, { mode: "overlay", compression, what: opts.what, onNote: opts.onNote }).then(
      (r) => r.diffId,
      (error) => void (failed = { error }),
    );
    out = await open(blobFile, "wx", 0o644);
    const hash = compression === "none" ? undefined : createHash("sha256");
    let size = 0;
    // One write of the blob in flight while the next chunk is read and extracted.
    let writing: Promise<void> | undefined;
    for (;;) {
      const { bytesRead, buffer } = await input.read(Buffer.allocUnsafe(CHUNK), 0, CHUNK, null);
      if (bytesRead === 0 || failed) break;
      const chunk = buffer.subarray(0, bytesRead);
      size += bytesRead;
      hash?.update(chunk);
      if (writing) await writing;
      writing = writeAll(out, chunk);
      if (!tar.write(chunk)) await Promise.race([once(tar, "drain"), applying]);
    }
    await writing;
    tar.end();
    const diffId = await applying;
    if (failed || !diffId) throw failed?.error;
    const ref = { diffId, size };
    await out.close();
    out = undefined;
    await store.syncFilesystem();
    if (hash) {
      const blob = { digest: digestOf(hash), size };
      await store.placeBlobFile(blob.digest, blobFile);
      await store.recordCompressed(diffId, blob, compression as "gzip" | "zstd");
    } else await store.placeBlobFile(diffId, blobFile);
    store.placeLayerDir(diffId, dir, { sync: false });
    return ref;
  } catch (e) {
    await out?.close();
    await Promise.all([rm(blobFile, { force: true }), rm(dir, { recursive: true, force: true })]);
    throw e;
  } finally {
    await input.close();
  }
}

const CHUNK = 1 << 20;

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
}
