// Worker threads that raw-deflate one block each, for the parallel gzip in gzip.ts. The workers'
// code is a string evaluated in the thread, so the same pool works from the TypeScript sources, the
// bundled CLI and the npm package alike (no worker file to find beside the bundle).
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { constants, deflateRaw } from "node:zlib";

/** One block to deflate: `dict` is the previous block's tail (≤ 32 KiB), `last` ends the stream. */
export interface DeflateJob {
  block: Buffer;
  dict: Buffer | undefined;
  last: boolean;
  level: number;
}

// Each block is its own raw deflate stream primed with the dictionary. A block that is not the last
// ends with a sync flush (an empty stored block: byte-aligned, not final), so the streams
// concatenate into one valid deflate stream; the last block's Z_FINISH sets BFINAL.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const zlib = require("node:zlib");
parentPort.on("message", ({ id, block, dict, last, level }) => {
  try {
    const input = Buffer.from(block.buffer, block.byteOffset, block.byteLength);
    const out = zlib.deflateRawSync(input, {
      level,
      memLevel: 8,
      windowBits: 15,
      strategy: zlib.constants.Z_DEFAULT_STRATEGY,
      ...(dict ? { dictionary: dict } : {}),
      finishFlush: last ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
    });
    const copy = new Uint8Array(out.length);
    copy.set(out);
    parentPort.postMessage({ id, out: copy }, [copy.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message || e) });
  }
});
`;

/**
 * The same deflate as a worker's, on libuv's thread pool (zlib's asynchronous call): no thread to
 * start, so a small layer does not wait for worker threads to boot (≈ 50–100 ms each under load)
 * to compress a block or two. Same zlib, same parameters: the same bytes as a worker gives.
 */
export function deflateOnThreadPool(job: DeflateJob): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    deflateRaw(
      job.block,
      {
        level: job.level,
        memLevel: 8,
        windowBits: 15,
        strategy: constants.Z_DEFAULT_STRATEGY,
        ...(job.dict ? { dictionary: job.dict } : {}),
        finishFlush: job.last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
      },
      (e, out) => (e ? reject(new Error(`deflate failed: ${e.message}`)) : resolve(out)),
    );
  });
}

interface Pending {
  resolve: (out: Buffer) => void;
  reject: (e: Error) => void;
}

/**
 * Blocks go to a worker as soon as they are submitted (to the one with the fewest pending), and
 * queue in its message port: a worker moves on to its next block without waiting for this thread,
 * which on a busy machine may not be scheduled for tens of milliseconds.
 */
class DeflatePool {
  private readonly workers: Array<{ worker: Worker; pending: Set<number> }> = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(readonly size: number) {}

  run(job: DeflateJob): Promise<Buffer> {
    const id = this.nextId++;
    const result = new Promise<Buffer>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    const w = this.pick();
    w.pending.add(id);
    w.worker.ref();
    // The block is a buffer of its own (gzip.ts copies into it), so it moves instead of copying.
    const transfer = job.block.byteOffset === 0 && job.block.byteLength === job.block.buffer.byteLength ? [job.block.buffer as ArrayBuffer] : [];
    w.worker.postMessage({ id, block: job.block, dict: job.dict, last: job.last, level: job.level }, transfer);
    return result;
  }

  private pick(): { worker: Worker; pending: Set<number> } {
    if (this.workers.length < this.size) {
      const idle = this.workers.find((w) => w.pending.size === 0);
      return idle ?? this.spawn();
    }
    return this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private spawn(): { worker: Worker; pending: Set<number> } {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    const entry = { worker, pending: new Set<number>() };
    worker.on("message", (msg: { id: number; out?: Uint8Array; error?: string }) => {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      entry.pending.delete(msg.id);
      // An idle worker must not keep the process alive.
      if (entry.pending.size === 0) worker.unref();
      if (msg.error !== undefined) p?.reject(new Error(`deflate failed in a compression worker: ${msg.error}`));
      else p?.resolve(Buffer.from(msg.out!.buffer, msg.out!.byteOffset, msg.out!.byteLength));
    });
    worker.on("error", (e) => this.fail(entry, e));
    worker.on("exit", (code) => this.fail(entry, new Error(`a compression worker exited with code ${code}`)));
    this.workers.push(entry);
    return entry;
  }

  /** A worker died: its pending blocks fail (the streams waiting on them end with the error). */
  private fail(entry: { worker: Worker; pending: Set<number> }, e: Error): void {
    const i = this.workers.indexOf(entry);
    if (i < 0) return;
    this.workers.splice(i, 1);
    for (const id of entry.pending) {
      this.pending.get(id)?.reject(e);
      this.pending.delete(id);
    }
  }
}

const pools = new Map<number, DeflatePool>();

/** Workers used when the caller names no count: every core, at most 16. */
export function defaultDeflateWorkers(): number {
  return Math.max(1, Math.min(16, availableParallelism()));
}

/** The process-wide pool of `workers` threads (made on first use; idle threads do not hold the process). */
export function deflatePool(workers = defaultDeflateWorkers()): { size: number; run(job: DeflateJob): Promise<Buffer> } {
  let pool = pools.get(workers);
  if (!pool) pools.set(workers, (pool = new DeflatePool(workers)));
  return pool;
}
