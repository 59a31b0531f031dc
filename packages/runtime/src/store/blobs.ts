// The store's blobs: blobs/sha256/<hex>, each written by streaming to a temp file while hashing,
// fsync and one rename, and read back with its digest checked.
import { createHash } from "node:crypto";
import { createReadStream, existsSync, statSync } from "node:fs";
import { open, readFile, rename, rm, type FileHandle } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { DigestMismatchError, UserError, fsyncDir, tempName, type StoreLayout } from "@mstage/core";
import { digestOf, sha256Digest, type Digest } from "../oci/digest.ts";

/** Bytes written between background datasyncs of a large blob. */
const SYNC_EVERY = 32 << 20;

export interface WriteBlobOptions {
  /** Known size: an existing blob of another size is rewritten, and a stream of another size rejected. */
  size?: number;
  /** Names the data's origin in errors, e.g. "layer sha256:… from docker.io/library/debian". */
  what?: string;
}

export function hasBlob(layout: StoreLayout, d: Digest): boolean {
  return existsSync(layout.blob(d));
}

/** Size of a stored blob, or null. */
export function blobSize(layout: StoreLayout, d: Digest): number | null {
  try {
    return statSync(layout.blob(d)).size;
  } catch {
    return null;
  }
}

/**
 * Stores bytes as a blob: streamed to a temp file while hashed, fsynced, renamed into place. With
 * `expected`, the bytes must hash to it (else DigestMismatchError and nothing is stored), and an
 * existing blob of that digest (and size, if given) is kept without reading `source`.
 */
export async function writeBlob(
  layout: StoreLayout,
  source: Readable | Uint8Array,
  expected?: Digest,
  opts: WriteBlobOptions = {},
): Promise<{ digest: Digest; size: number }> {
  if (expected) {
    const have = blobSize(layout, expected);
    if (have !== null && (opts.size === undefined || opts.size === have)) {
      if (source instanceof Readable) source.destroy();
      return { digest: expected, size: have };
    }
  }
  const tmp = tempName(layout.tmpDir, "blob");
  const hash = createHash("sha256");
  let size = 0;
  const fh = await open(tmp, "wx", 0o644);
  // One write in flight while the next chunk is produced and hashed, and a datasync every
  // SYNC_EVERY bytes in the background: producing, hashing and writeback to disk overlap, instead
  // of one long fsync of a whole layer at the end.
  let writing: Promise<void> | null = null;
  let syncing: Promise<void> | null = null;
  let syncError: unknown;
  try {
    if (source instanceof Uint8Array) {
      hash.update(source);
      size = source.byteLength;
      await writeAll(fh, Buffer.from(source.buffer, source.byteOffset, source.byteLength));
    } else {
      let unsynced = 0;
      for await (const chunk of source as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.byteLength;
        if (writing) await writing;
        writing = writeAll(fh, chunk);
        // Handled when awaited; until then a failure must not count as an unhandled rejection.
        writing.catch(() => {});
        unsynced += chunk.byteLength;
        if (unsynced >= SYNC_EVERY && !syncing) {
          unsynced = 0;
          syncing = writing
            .then(() => fh.datasync())
            .catch((e) => void (syncError ??= e))
            .finally(() => void (syncing = null));
        }
      }
      if (writing) await writing;
      if (syncing) await syncing;
      if (syncError) throw syncError;
    }
    await fh.sync();
  } catch (e) {
    await Promise.allSettled([writing, syncing]);
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  const digest = digestOf(hash);
  const what = opts.what ?? `blob ${expected ?? digest}`;
  if (expected && digest !== expected) {
    await rm(tmp, { force: true });
    throw new DigestMismatchError(expected, digest, what);
  }
  if (opts.size !== undefined && size !== opts.size) {
    await rm(tmp, { force: true });
    throw new UserError(`${what}: expected ${opts.size} bytes, got ${size}`);
  }
  // Another process may have stored the same bytes meanwhile: rename over it is harmless (same content).
  await rename(tmp, layout.blob(digest));
  fsyncDir(layout.blobsDir);
  return { digest, size };
}

/**
 * Moves `file` (in the store's tmp/, already hashed to `digest` by its writer) into place as that
 * blob. Not synced here: the caller made it durable first (see Store.syncFilesystem).
 */
export async function placeBlobFile(layout: StoreLayout, digest: Digest, file: string): Promise<void> {
  await rename(file, layout.blob(digest));
}

/** Reads a blob, checking its digest as it streams (the stream errors at its end on a mismatch). */
export function openBlob(layout: StoreLayout, d: Digest, opts: { verify?: boolean } = {}): Readable {
  const file = layout.blob(d);
  const raw = createReadStream(file, { highWaterMark: 1 << 20 });
  if (opts.verify === false) return raw;
  const hash = createHash("sha256");
  const check = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      const got = digestOf(hash);
      cb(got === d ? null : new DigestMismatchError(d, got, `stored blob ${file}`));
    },
  });
  raw.on("error", (e) => check.destroy(e));
  return raw.pipe(check);
}

/** A whole small blob (manifest, config), verified. */
export async function readBlob(layout: StoreLayout, d: Digest): Promise<Buffer> {
  const data = await readFile(layout.blob(d));
  const got = sha256Digest(data);
  if (got !== d) throw new DigestMismatchError(d, got, `stored blob ${layout.blob(d)}`);
  return data;
}

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
}
