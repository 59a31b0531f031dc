// The worker thread of unpack.ts: applies one pulled layer's tar (the compressed bytes, posted by
// the main thread as they arrive) with the same applyLayer and its checks, so extraction's
// synchronous file system calls do not hold up the download, hashing and blob write there.
import { Readable } from "node:stream";
import { parentPort, workerData } from "node:worker_threads";
import { applyLayer, type ApplyOptions } from "./apply.ts";
import type { LayerCompression } from "./decompress.ts";

export interface UnpackWorkerData {
  dir: string;
  /**
   * One Int32: bytes of tar posted to the main thread and not yet hashed there. The worker waits
   * while it is over TAR_IN_FLIGHT, so a starved main thread (or a gzip bomb) cannot make the
   * queue of "tar" messages hold the whole inflated layer.
   */
  tarInFlight: SharedArrayBuffer;
  mode: ApplyOptions["mode"];
  compression?: LayerCompression;
  what?: string;
}

/**
 * main → worker: a chunk of the body, or null at its end. worker → main: these; "tar" is the next
 * piece of the uncompressed tar, which the main thread hashes into the diff-id (all of them come
 * before "done").
 */
export type UnpackWorkerMessage =
  | { kind: "ack"; bytes: number }
  | { kind: "note"; message: string }
  | { kind: "tar"; bytes: Uint8Array }
  | { kind: "done" }
  | { kind: "error"; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  detail?: string;
  entry?: string;
  code?: string;
}

/** Bytes of inflated tar on their way to the main thread's hash, at most (and one piece more). */
export const TAR_IN_FLIGHT = 64 << 20;

function serialize(e: unknown): SerializedError {
  if (!(e instanceof Error)) return { name: "Error", message: String(e) };
  const x = e as Error & { detail?: string; entry?: string; code?: unknown };
  return { name: x.name, message: x.message, stack: x.stack, detail: x.detail, entry: x.entry, code: typeof x.code === "string" ? x.code : undefined };
}

if (parentPort) {
  const port = parentPort;
  const data = workerData as UnpackWorkerData;
  const post = (m: UnpackWorkerMessage) => port.postMessage(m);
  let pushed = 0;
  // Each time the tar reader wants more, the main thread is told how many bytes it was given, so
  // it keeps a bounded window in flight (its own backpressure then reaches the download).
  const input = new Readable({
    highWaterMark: 4 << 20,
    read() {
      if (pushed > 0) {
        post({ kind: "ack", bytes: pushed });
        pushed = 0;
      }
    },
  });
  port.on("message", (chunk: Uint8Array | null) => {
    if (chunk === null) input.push(null);
    else {
      pushed += chunk.byteLength;
      input.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    }
  });
  // Each piece is copied out (it is a slice of zlib's buffer, which tar-stream still reads) into
  // a buffer of its own that moves to the main thread: a copy costs this thread a fraction of
  // hashing it (970 MB Go base: sha256 was 0.6 s of this thread's time).
  const inFlight = new Int32Array(data.tarInFlight);
  const onTar = (chunk: Buffer) => {
    // Blocking is fine here: this thread has nothing else to do until the main thread catches up.
    for (let n = Atomics.load(inFlight, 0); n > TAR_IN_FLIGHT; n = Atomics.load(inFlight, 0)) Atomics.wait(inFlight, 0, n, 100);
    const bytes = new Uint8Array(chunk.length);
    bytes.set(chunk);
    Atomics.add(inFlight, 0, bytes.length);
    port.postMessage({ kind: "tar", bytes } satisfies UnpackWorkerMessage, [bytes.buffer]);
  };
  applyLayer(input, data.dir, { mode: data.mode, compression: data.compression, what: data.what, onNote: (message) => post({ kind: "note", message }), onTar }).then(
    () => {
      post({ kind: "done" });
      port.close();
    },
    (e) => {
      post({ kind: "error", error: serialize(e) });
      port.close();
    },
  );
}
