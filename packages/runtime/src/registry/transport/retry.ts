// When a failed registry request is tried again: exponential backoff with jitter, or the
// registry's own Retry-After (capped).
import { setTimeout as sleep } from "node:timers/promises";
import type { TransportOptions } from "./http.ts";

/**
 * A registry that stalled twice in a row on one request will not recover soon: a stall is retried
 * once, so a stalled body ends a pull within about two idle timeouts instead of one per retry.
 */
export const MAX_STALL_RETRIES = 1;

/** Waits before attempt `attempt + 1`, telling the user why. */
export async function backoff(o: TransportOptions, attempt: number, retryAfter: number | undefined, note: string): Promise<void> {
  const base = o.backoffMs * 2 ** (attempt - 1);
  const delay = retryAfter !== undefined ? Math.min(retryAfter, o.maxRetryAfterMs) : base + Math.random() * base * 0.25;
  o.onNote?.(`${note} in ${(delay / 1000).toFixed(1)} s (attempt ${attempt + 1} of ${o.retries + 1})`);
  try {
    await sleep(delay, undefined, { signal: o.signal });
  } catch (e) {
    throw o.signal?.aborted ? o.signal.reason : e;
  }
}

/** Seconds or an HTTP date, in ms; undefined when absent or nonsense. */
export function retryAfterMs(h: string | string[] | undefined): number | undefined {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}
