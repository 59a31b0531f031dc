// A blob written the way `tar -c | openssl dgst` runs: the producer (the layer commit, reading files
// on the main thread) copies its bytes into a ring of shared buffers, and a worker thread hashes and
// writes them to the temp file. The two sides wait on each other with Atomics.wait, not through the
// event loop, so a gigabyte costs no thousand wake-ups of the main thread, and reading overlaps
// hashing and writing on two cores.
import { open, rm } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import type { StoreLayout } from "@mstage/core";
import { parseDigest, type Digest } from "../oci/digest.ts";
import { placeBlobFile } from "./blobs.ts";
import { fsyncDir, tempName } from "./atomic-files.ts";

const SLOT = 1 << 20;
const SLOTS = 16;
// Control words: bytes in each slot, then the counters.
const HEAD = SLOTS; // slots filled by the producer
const TAIL = SLOTS + 1; // slots consumed by the worker
const DONE = SLOTS + 2; // 1 once the producer has no more
const FAILED = SLOTS + 3; // 1 once the worker failed (it then drains without writing)

const WORKER_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const { writeSync } = require("node:fs");
const { ctrl: ctrlBuf, data, fd, slot, slots } = workerData;
const ctrl = new Int32Array(ctrlBuf);
const bytes = new Uint8Array(data);
const HEAD = slots, TAIL = slots + 1, DONE = slots + 2, FAILED = slots + 3;
const hash = createHash("sha256");
let size = 0, error;
for (let tail = 0; ; ) {
  const head = Atomics.load(ctrl, HEAD);
  if (head === tail) {
    if (Atomics.load(ctrl, DONE) === 1 && Atomics.load(ctrl, HEAD) === tail) break;
    Atomics.wait(ctrl, HEAD, head, 50);
    continue;
  }
  const i = tail % slots;
  const view = bytes.subarray(i * slot, i * slot + ctrl[i]);
  if (!error) {
    try {
      hash.update(view);
      for (let off = 0; off < view.length; ) off += writeSync(fd, view, off);
      size += view.length;
    } catch (e) {
      error = { message: e.message, code: e.code };
      Atomics.store(ctrl, FAILED, 1);
    }
  }
  tail++;
  Atomics.store(ctrl, TAIL, tail);
  Atomics.notify(ctrl, TAIL);
}
parentPort.postMessage(error ? { error } : { digest: "sha256:" + hash.digest("hex"), size });
`;

export interface BlobPipe {
  /** Copies `chunk` into the ring; blocks (briefly) while the worker is a full ring behind. */
  write(chunk: Uint8Array): void;
  /** No more bytes: waits for the worker, fsyncs, renames into place. */
  finish(): Promise<{ digest: Digest; size: number }>;
  /** Stops and removes the temp file (after an error on the producer's side). */
  abort(): Promise<void>;
}

export async function openBlobPipe(layout: StoreLayout): Promise<BlobPipe> {
  const tmp = tempName(layout.tmpDir, "blob");
  const fh = await open(tmp, "wx", 0o644);
  const ctrl = new Int32Array(new SharedArrayBuffer((SLOTS + 4) * 4));
  const data = new Uint8Array(new SharedArrayBuffer(SLOT * SLOTS));
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ctrl: ctrl.buffer, data: data.buffer, fd: fh.fd, slot: SLOT, slots: SLOTS } });
  const result = new Promise<{ digest?: string; size?: number; error?: { message: string; code?: string } }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`the blob writer thread exited with code ${code}`)));
  });
  result.catch(() => {});
  let head = 0;
  let closed = false;

  const end = async () => {
    Atomics.store(ctrl, DONE, 1);
    Atomics.notify(ctrl, HEAD);
    try {
      return await result;
    } finally {
      await worker.terminate();
    }
  };
  const discard = async () => {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
  };

  return {
    write(chunk) {
      for (let off = 0; off < chunk.length; ) {
        // Wait for a free slot; a failed worker frees every slot at once, so this never hangs.
        while (head - Atomics.load(ctrl, TAIL) >= SLOTS) Atomics.wait(ctrl, TAIL, Atomics.load(ctrl, TAIL), 50);
        if (Atomics.load(ctrl, FAILED) === 1) return;
        const i = head % SLOTS;
        const n = Math.min(SLOT, chunk.length - off);
        data.set(chunk.subarray(off, off + n), i * SLOT);
        ctrl[i] = n;
        off += n;
        head++;
        Atomics.store(ctrl, HEAD, head);
        Atomics.notify(ctrl, HEAD);
      }
    },
    async finish() {
      closed = true;
      let r;
      try {
        r = await end();
        if (r.error) throw Object.assign(new Error(`writing a blob in ${layout.tmpDir}: ${r.error.message}`), { code: r.error.code });
        await fh.sync();
      } catch (e) {
        await discard();
        throw e;
      }
      await fh.close();
      const digest = parseDigest(r.digest!);
      await placeBlobFile(layout, digest, tmp);
      fsyncDir(layout.blobsDir);
      return { digest, size: r.size! };
    },
    async abort() {
      if (closed) return;
      closed = true;
      await end().catch(() => {});
      await discard();
    },
  };
}
