// The ping of `/v2/` that starts every conversation with a registry: it decides https or http and
// learns how the registry wants to authenticate (its WWW-Authenticate challenge, or none).
import { RegistryError } from "@mstage/core";
import { apiHost, isLoopbackHost } from "../reference.ts";
import { parseChallenge, type Authorization, type Challenge } from "./bearer.ts";
import { TIMEOUT_CODES, errorCode, isTimeout, networkError, statusError } from "./errors.ts";
import type { HttpTransport, RegistryResponse } from "./http.ts";
import { MAX_STALL_RETRIES, backoff, retryAfterMs } from "./retry.ts";

/** What the client knows of one registry host. */
export interface HostState {
  /** `https://host` or `http://host`, decided by the ping. */
  base: string;
  /** null: the registry let the ping through without credentials. */
  challenge: Challenge | null;
  /** Bearer tokens by scope set (bearer.ts scopeKey). */
  tokens: Map<string, Authorization>;
}

export async function ping(t: HttpTransport, registry: string): Promise<HostState> {
  const hostPort = apiHost(registry);
  // Loopback registries are nearly always plain HTTP: asking that first saves a TLS handshake
  // (and loading the CA bundle); insecure remote hosts are tried over TLS first, like Docker does.
  const schemes = isLoopbackHost(registry) ? ["http", "https"] : t.isInsecure(registry) ? ["https", "http"] : ["https"];
  let lastError: RegistryError | undefined;
  for (const [i, scheme] of schemes.entries()) {
    const base = `${scheme}://${hostPort}`;
    const hasFallback = i + 1 < schemes.length;
    let stalls = 0;
    for (let attempt = 0; ; attempt++) {
      let res: RegistryResponse;
      try {
        res = await t.send(registry, "GET", `${base}/v2/`, {});
      } catch (e) {
        const err = networkError(t, e, "GET", `${base}/v2/`, `registry ${registry}`, registry);
        lastError = err;
        // A TLS handshake with a plain-HTTP server (or the reverse) fails at once: try the other scheme.
        if (hasFallback && !TIMEOUT_CODES.has(errorCode(e) ?? "")) break;
        if (!err.temporary || attempt >= t.options.retries || (isTimeout(e) && stalls++ >= MAX_STALL_RETRIES)) throw err;
        await backoff(t.options, attempt + 1, undefined, `${err.message}; retrying`);
        continue;
      }
      if (res.status === 401) {
        await res.body.dump();
        return { base, challenge: parseChallenge(res.headers["www-authenticate"]) ?? null, tokens: new Map() };
      }
      // Go's TLS server answers a plain-HTTP request with 400: the registry wants TLS.
      if (res.status === 400 && scheme === "http" && hasFallback) {
        await res.body.dump();
        break;
      }
      if (res.status < 500 && res.status !== 429) {
        await res.body.dump();
        return { base, challenge: null, tokens: new Map() };
      }
      const err = await statusError(t, res, "GET", `${base}/v2/`, `registry ${registry}`, registry);
      if (attempt >= t.options.retries) throw err;
      await backoff(t.options, attempt + 1, retryAfterMs(res.headers["retry-after"]), `${err.message}; retrying`);
    }
  }
  throw lastError ?? new RegistryError(`registry ${registry} answers neither HTTPS nor HTTP requests for /v2/`, 400, "GET", `${schemes[0]}://${hostPort}/v2/`, false);
}
