// Reading a response body whole, bounded: at most `limit` bytes and at most `deadlineMs` for all of
// it, so an endless or dripping body (a token, an error document, a manifest) can neither grow
// mstage's memory nor hold a pull forever. Streamed blob bodies are bounded by their descriptor's
// size (pull.ts) and by the transport's idle timeout instead.
import { RegistryError } from "@mstage/core";
import { redact } from "./errors.ts";
import type { RegistryResponse } from "./http.ts";

export interface BodyLimits {
  /** Most bytes accepted. */
  limit: number;
  /** Longest time for the whole body. */
  deadlineMs: number;
  /** Names the body in errors: "the token for registry.example.com". */
  what: string;
  /** Aborts the read (the run's signal). */
  signal?: AbortSignal;
}

/** The token endpoint's answer: a JWT plus a few fields; a megabyte is far more than any real one. */
export const MAX_TOKEN_BYTES = 1 << 20;
/** Distribution's own limit for manifests and indexes. */
export const MAX_MANIFEST_BYTES = 4 << 20;
/** Image configs are read whole into memory: larger ones are refused. */
export const MAX_CONFIG_BYTES = 16 << 20;
/** Of an error document only the first lines are shown. */
export const ERROR_DETAIL_BYTES = 4096;

/** The whole body, or a RegistryError when it is longer than `limit` or slower than `deadlineMs`. */
export async function readBody(res: RegistryResponse, o: BodyLimits): Promise<Buffer> {
  const { chunks, over, timedOut } = await collect(res, o);
  const safe = redact(res.url);
  if (over) throw new RegistryError(`${o.what} is larger than ${o.limit} bytes; refusing it (GET ${safe})`, res.status, "GET", safe, false);
  if (timedOut) throw new RegistryError(`${o.what} did not arrive within ${Math.round(o.deadlineMs / 1000)} s (GET ${safe})`, res.status, "GET", safe, true);
  return Buffer.concat(chunks);
}

/** At most the first `limit` bytes of the body, whatever its length or pace; the rest is dropped. */
export async function readBodyPrefix(res: RegistryResponse, o: BodyLimits): Promise<Buffer> {
  const { chunks } = await collect(res, o);
  return Buffer.concat(chunks).subarray(0, o.limit);
}

async function collect(res: RegistryResponse, o: BodyLimits): Promise<{ chunks: Buffer[]; over: boolean; timedOut: boolean }> {
  const body = res.body;
  const chunks: Buffer[] = [];
  let total = 0;
  let over = false;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    body.destroy();
  }, o.deadlineMs);
  const onAbort = () => body.destroy(o.signal?.reason instanceof Error ? o.signal.reason : undefined);
  o.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      total += chunk.length;
      if (total > o.limit) {
        over = true;
        body.destroy();
        break;
      }
    }
  } catch (e) {
    // A body destroyed by our own deadline ends the loop with an error; anything else is real.
    if (!timedOut) throw o.signal?.aborted ? o.signal.reason : e;
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener("abort", onAbort);
  }
  if (o.signal?.aborted) throw o.signal.reason;
  return { chunks, over, timedOut };
}
