// A layer extracted while it downloads: the compressed bytes are hashed and written to a temp
// blob in the store's tmp/ as they arrive, and at the same time decompressed and applied to a
// temp dir there. Neither is trusted until both digests match (the blob's, and the tar's against
// the config's diff_id); then all layers of a pull are synced at once and renamed into place.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { open, rm, type FileHandle } from "node:fs/promises";
import { PassThrough, type Readable } from "node:stream";
import { Worker } from "node:worker_threads";
import { DigestMismatchError, HostileLayerError, UserError } from "@mstage/core";
import { digestOf, type Digest } from "../oci/digest.ts";
import type { Store } from "../store/store.ts";
import { applyLayer, CorruptLayerError, type ApplyOptions } from "./apply.ts";
import { compressionOfMediaType } from "./decompress.ts";
import type { SerializedError, UnpackWorkerData, UnpackWorkerMessage } from "./unpack-worker.ts";

/**
 * Layers this large (compressed) or larger are extracted on a worker thread: extraction's file
 * system calls are synchronous, and on the main thread they stall the download, the blob's hash
 * and its write. A smaller layer is not worth the ≈ 50 ms a worker takes to start.
 */
export const WORKER_FROM = 32 << 20;
/**
 * Bytes posted to the worker and not yet taken by its tar reader, at most; they go in messages of
 * about BATCH bytes. Each acknowledgement needs this thread scheduled, which under load takes tens
 * of milliseconds: a small window turned that wait into the pull's pace.
 */
const WINDOW = 32 << 20;
const BATCH = 1 << 20;
/**
 * Every this many compressed bytes a layer's staging starts a sync of the store's filesystem and
 * does not wait for it: the disk writes what was extracted so far while the CPU goes on inflating,
 * so the one sync that makes the pull durable (commitStagedLayers) finds little left to write.
 * Without it the whole pull (≈ 1.3 GB for a 970 MB base) was written in that last sync, with both
 * cores idle.
 */
export const WRITEBACK_EVERY = 64 << 20;
/**
 * Once the blob has arrived, one more such sync at once and then one every this many milliseconds
 * until the extraction is done: it is still writing what its window held (≈ 100 MB of files), and
 * the last sync then waited 0.33-0.42 s for that, against 0.01-0.03 s with these.
 */
export const WRITEBACK_TAIL_MS = 250;

export interface LayerToUnpack {
  /** Digest of the blob as it comes (compressed). */
  digest: Digest;
  /** Digest of the uncompressed tar, from the image config. */
  diffId: Digest;
  mediaType: string;
  /** The blob's size (from the manifest): decides whether a worker thread extracts it. */
  size?: number;
}

/** A verified layer still in tmp/: its blob file and extracted dir, not yet in place. */
export interface StagedLayer {
  layer: LayerToUnpack;
  blobFile: string;
  dir: string;
}

/**
 * Consumes `body` (the blob's bytes, whose length the caller bounds), writing it to a temp blob
 * while extracting it into a temp dir. Rejects, keeping nothing, when the body fails (the body's
 * own error, so the caller can retry), when the bytes do not hash to `layer.digest`
 * (DigestMismatchError expecting the digest), when the tar is hostile or corrupt (apply's error,
 * reported only once the blob itself proved to be what the manifest names), or when the tar does
 * not hash to `layer.diffId` (DigestMismatchError expecting the diff-id).
 */
export async function stageLayer(
  store: Store,
  body: Readable,
  layer: LayerToUnpack,
  opts: { what: string; onNote?: (msg: string) => void; /** Default WORKER_FROM. */ workerFrom?: number; /** Default WRITEBACK_EVERY. */ writebackEvery?: number; /** Default WRITEBACK_TAIL_MS. */ writebackTailMs?: number },
): Promise<StagedLayer> {
  const blobFile = store.tmpPath("blob");
  const dir = store.tmpDir("layer");
  const discard = () => Promise.all([rm(blobFile, { force: true }), rm(dir, { recursive: true, force: true })]);
  let fh: FileHandle | undefined;
  const hash = createHash("sha256");
  const tar = new PassThrough({ highWaterMark: 1 << 20 });
  // apply's own pipeline reports the error; this keeps a late one from being unhandled.
  tar.on("error", () => {});
  let applyError: unknown;
  let applied: Digest | undefined;
  const apply = (layer.size ?? 0) >= (opts.workerFrom ?? WORKER_FROM) ? applyInWorker : applyLayer;
  const applying = apply(tar, dir, { mode: "overlay", compression: compressionOfMediaType(layer.mediaType) ?? undefined, what: opts.what, onNote: opts.onNote }).then(
    (r) => void (applied = r.diffId),
    (e) => void (applyError = e),
  );
  // One file write in flight while the next chunk is hashed and extracted.
  let writing: Promise<void> | null = null;
  const writebackEvery = opts.writebackEvery ?? WRITEBACK_EVERY;
  // Only a head start for the disk: a failure here is the final sync's to report.
  const writeback = () => void store.syncFilesystem().catch(() => {});
  let received = 0;
  try {
    fh = await open(blobFile, "wx", 0o644);
    for await (const chunk of body as AsyncIterable<Buffer>) {
      hash.update(chunk);
      received += chunk.length;
      if (Math.floor(received / writebackEvery) !== Math.floor((received - chunk.length) / writebackEvery)) writeback();
      if (writing) await writing;
      writing = writeAll(fh, chunk);
      writing.catch(() => {});
      // A layer apply refused is still read to its end: whether the blob is the one asked for
      // decides what the error says (a corrupted transfer, or a hostile image).
      if (applyError === undefined && applied === undefined && !tar.destroyed && !tar.write(chunk)) {
        await Promise.race([once(tar, "drain").catch(() => {}), applying]);
      }
    }
    if (writing) await writing;
    tar.end();
    writeback();
    const tailMs = opts.writebackTailMs ?? WRITEBACK_TAIL_MS;
    const tail = tailMs < 2 ** 31 ? setInterval(writeback, tailMs) : undefined;
    try {
      await applying;
    } finally {
      clearInterval(tail);
    }
  } catch (e) {
    await Promise.allSettled([writing]);
    tar.destroy();
    await applying;
    await fh?.close();
    await discard();
    throw e;
  }
  await fh.close();
  const digest = digestOf(hash);
  const failure =
    digest !== layer.digest
      ? new DigestMismatchError(layer.digest, digest, opts.what)
      : applyError !== undefined
        ? applyError
        : applied !== layer.diffId
          ? new DigestMismatchError(layer.diffId, applied ?? "nothing", `${opts.what} (its uncompressed tar, against the image config's diff_id)`)
          : undefined;
  if (failure !== undefined) {
    await discard();
    throw failure;
  }
  return { layer, blobFile, dir };
}

/**
 * Makes staged layers trusted: one sync of the store's filesystem for all their files, then each
 * blob and dir renamed into place. The caller records its result durably afterwards, and that
 * record's fsync commits the renames.
 */
export async function commitStagedLayers(store: Store, staged: readonly StagedLayer[]): Promise<void> {
  if (staged.length === 0) return;
  await store.syncFilesystem();
  for (const s of staged) {
    await store.placeBlobFile(s.layer.digest, s.blobFile);
    store.placeLayerDir(s.layer.diffId, s.dir, { sync: false });
  }
}

/** Removes staged layers of a pull that failed. */
export async function discardStagedLayers(staged: readonly StagedLayer[]): Promise<void> {
  await Promise.all(staged.flatMap((s) => [rm(s.blobFile, { force: true }), rm(s.dir, { recursive: true, force: true })]));
}

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
}

/**
 * A worker running unpack-worker: in the bundle, its entry beside the chunks (scripts/build.mjs);
 * from the TypeScript sources (unit tests under tsx), unpack-worker-source.mjs, which registers tsx
 * in the thread first. The bundle names no tsx import: the installed package does not depend on it.
 */
function startWorker(workerData: UnpackWorkerData): Worker {
  const entry = import.meta.url.endsWith(".ts") ? "./unpack-worker-source.mjs" : "../unpack-worker.mjs";
  return new Worker(new URL(entry, import.meta.url), { workerData });
}

/**
 * applyLayer on a worker thread: the same checks and errors (rebuilt here with their classes and
 * messages). It settles only once the worker is gone, so the caller may remove `dir` at once.
 */
export async function applyInWorker(source: Readable, dir: string, opts: ApplyOptions): Promise<{ diffId: Digest }> {
  const tarInFlight = new SharedArrayBuffer(4);
  const worker = startWorker({ dir, mode: opts.mode, compression: opts.compression, what: opts.what, tarInFlight });
  // The diff-id: the worker sends the uncompressed tar's bytes here, in order, before "done".
  const tarHash = createHash("sha256");
  const inFlight = new Int32Array(tarInFlight);
  let unacked = 0;
  let wake: (() => void) | undefined;
  let settled = false;
  const result = new Promise<{ diffId: Digest }>((resolve, reject) => {
    worker.on("message", (m: UnpackWorkerMessage) => {
      if (m.kind === "ack") {
        unacked -= m.bytes;
        wake?.();
      } else if (m.kind === "tar") {
        tarHash.update(m.bytes);
        Atomics.sub(inFlight, 0, m.bytes.length);
        Atomics.notify(inFlight, 0);
      } else if (m.kind === "note") opts.onNote?.(m.message);
      else if (m.kind === "done") resolve({ diffId: digestOf(tarHash) });
      else reject(revive(m.error));
    });
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`the layer extraction worker exited with code ${code} before it finished`)));
  }).finally(() => {
    settled = true;
    wake?.();
  });
  result.catch(() => {});
  // Chunks are gathered into one buffer of the worker's own (the caller still writes each chunk to
  // the blob file), which moves to it without a copy.
  let batch: Buffer[] = [];
  let batched = 0;
  const post = () => {
    const out = new Uint8Array(batched);
    let off = 0;
    for (const c of batch) {
      out.set(c, off);
      off += c.length;
    }
    unacked += batched;
    batch = [];
    batched = 0;
    worker.postMessage(out, [out.buffer]);
  };
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (settled) break;
      batch.push(chunk);
      batched += chunk.length;
      if (batched < BATCH) continue;
      post();
      while (unacked >= WINDOW && !settled) await new Promise<void>((r) => (wake = r));
    }
    if (!settled) {
      if (batched) post();
      worker.postMessage(null);
    }
    return await result;
  } finally {
    await worker.terminate();
  }
}

/** An error the worker sent, as the class applyLayer threw it (what the CLI renders depends on it). */
function revive(s: SerializedError): Error {
  const e =
    s.name === "HostileLayerError"
      ? new HostileLayerError(s.entry ?? "", "")
      : s.name === "CorruptLayerError"
        ? new CorruptLayerError(s.message)
        : s.name === "UserError"
          ? new UserError(s.message, { detail: s.detail })
          : new Error(s.message);
  e.message = s.message;
  if (s.stack) e.stack = s.stack;
  if (s.code) (e as NodeJS.ErrnoException).code = s.code;
  return e;
}
