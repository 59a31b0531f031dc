// Deterministic parallel gzip of a store blob, as pigz makes it: the input is cut into fixed-size
// blocks, each raw-deflated on a worker thread (the first few on libuv's thread pool, so a small
// layer starts no thread) with the previous block's last 32 KiB as its dictionary, and the blocks
// are joined into ONE gzip member (fixed header: no name, mtime 0, XFL 0,
// OS "unknown" as Go's compress/gzip writes it; CRC32 and ISIZE of the whole input). The block size
// does not depend on the worker count, so the bytes are the same on any machine and core count that
// runs the same zlib: Node's bundled one (process.versions.zlib, 1.3.1-e00f703 in Node 20.20).
import { Readable } from "node:stream";
import { crc32 } from "node:zlib";
import type { OciBlobStore } from "./blobs.ts";
import { deflateOnThreadPool, deflatePool } from "./deflate-pool.ts";
import type { Digest } from "./digest.ts";

export const GZIP_LEVEL = 6;
/** Bytes of input per deflate block. Part of the output's identity: changing it changes every digest. */
export const GZIP_BLOCK = 1 << 20;
/** Deflate's window: the most of the previous block a block can refer back to. */
const DICT = 32 * 1024;

/** 10-byte header: magic, CM=deflate, no flags, MTIME 0, XFL 0, OS 255 (unknown). */
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff]);

export interface GzipOptions {
  level?: number;
  /** Worker threads (default: every core). The output does not depend on it. */
  workers?: number;
  /** Called with the input bytes compressed so far, as blocks complete. */
  onProgress?: (bytesIn: number) => void;
  /**
   * The first blocks of the stream go to libuv's thread pool instead (default INLINE_BLOCKS), so
   * a layer of a few MiB starts no worker thread; later ones to the workers. The output does not
   * depend on it.
   */
  threadPoolBlocks?: number;
}

/** Blocks a stream deflates on libuv's thread pool before it uses the worker threads. */
export const INLINE_BLOCKS = 4;

/** The gzip of `source`, compressed block-parallel; same bytes for any `workers`. */
export async function* gzipChunks(source: AsyncIterable<Buffer>, options: GzipOptions = {}): AsyncGenerator<Buffer> {
  const level = options.level ?? GZIP_LEVEL;
  const threadPoolBlocks = options.threadPoolBlocks ?? INLINE_BLOCKS;
  let submitted = 0;
  // Its threads start with the first block sent to it: a stream of a few blocks starts none.
  const pool = deflatePool(options.workers);
  // Enough blocks queued at every worker that it never waits for this thread to be scheduled.
  const window = Math.max(threadPoolBlocks, pool.size * 4);
  const inFlight: Array<{ out: Promise<Buffer>; size: number }> = [];
  let crc = 0;
  let total = 0;
  let done = 0;
  let dict: Buffer | undefined;
  let block = Buffer.allocUnsafeSlow(GZIP_BLOCK);
  let fill = 0;
  // A full block is held back until more input (or the end) says whether it is the last.
  let held: Buffer | undefined;

  const submit = (data: Buffer, last: boolean) => {
    crc = crc32(data, crc);
    total += data.length;
    const next = data.length >= DICT ? Buffer.from(data.subarray(data.length - DICT)) : dict ? Buffer.concat([dict, data]).subarray(-DICT) : Buffer.from(data);
    const job = { block: data, dict, last, level };
    const out = submitted++ < threadPoolBlocks ? deflateOnThreadPool(job) : pool.run(job);
    // A rejected block is awaited below in order; mark it handled so it never surfaces unhandled.
    out.catch(() => {});
    inFlight.push({ out, size: data.length });
    dict = next;
  };
  const drain = async function* (keep: number): AsyncGenerator<Buffer> {
    while (inFlight.length > keep) {
      const { out, size } = inFlight.shift()!;
      const bytes = await out;
      done += size;
      options.onProgress?.(done);
      yield bytes;
    }
  };

  yield Buffer.from(HEADER);
  try {
    for await (const chunk of source) {
      let off = 0;
      while (off < chunk.length) {
        if (held) {
          submit(held, false);
          held = undefined;
          yield* drain(window);
        }
        const n = Math.min(chunk.length - off, GZIP_BLOCK - fill);
        chunk.copy(block, fill, off, off + n);
        fill += n;
        off += n;
        if (fill === GZIP_BLOCK) {
          held = block;
          block = Buffer.allocUnsafeSlow(GZIP_BLOCK);
          fill = 0;
        }
      }
    }
    submit(held ?? block.subarray(0, fill), true);
    yield* drain(0);
  } finally {
    // Stopped early (an error downstream): the blocks still running finish in their workers, unread.
    inFlight.length = 0;
  }
  const trailer = Buffer.allocUnsafe(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(total % 2 ** 32, 4);
  yield trailer;
}

/** Gzips the blob `diffId` into a new store blob; returns the compressed blob's digest and size. */
export async function gzipBlob(store: OciBlobStore, diffId: Digest, options: GzipOptions = {}): Promise<{ digest: Digest; size: number }> {
  if (!(await store.hasBlob(diffId))) {
    throw new Error(`layer ${diffId} is not in the store uncompressed, so it cannot be gzipped here`);
  }
  const input = store.openBlob(diffId);
  const output = Readable.from(gzipChunks(input, options), { objectMode: false });
  try {
    return await store.writeBlob(output);
  } finally {
    input.destroy();
  }
}
