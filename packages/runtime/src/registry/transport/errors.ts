// Registry failures as RegistryErrors: a failed connection or body stream, or an error status with
// its distribution error body; whether each is worth a retry; URLs redacted for messages.
import { RegistryError, findCause } from "@mstage/core";
import { ERROR_DETAIL_BYTES, readBodyPrefix } from "./body.ts";
import type { HttpTransport, RegistryResponse } from "./http.ts";

const TEMPORARY_CODES = new Set([
  "ECONNRESET", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH",
  "UND_ERR_SOCKET", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_CLOSED",
]);
export const TIMEOUT_CODES = new Set(["ETIMEDOUT", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);

/** A RegistryError for a failed connection or body stream (temporary when worth a retry). */
export function networkError(t: HttpTransport, e: unknown, method: string, url: string, what: string, registry: string): RegistryError {
  if (e instanceof RegistryError) return e;
  const code = errorCode(e);
  const safe = redact(url);
  if (code && TIMEOUT_CODES.has(code)) {
    return new RegistryError(`timed out after ${seconds(t.options.timeoutMs)} talking to ${registry} (${method} ${safe}) while fetching ${what}`, undefined, method, safe, true, { cause: e });
  }
  if (code && (code.startsWith("ERR_SSL_") || code === "EPROTO") && url.startsWith("https:") && !t.isInsecure(registry)) {
    return new RegistryError(`registry ${registry} does not answer HTTPS (${code}); if it is a plain-HTTP registry you trust, allow it with --insecure-registry ${registry}`, undefined, method, safe, false, { cause: e });
  }
  if (code === "ECONNREFUSED" || code === "ENOTFOUND") {
    return new RegistryError(`cannot connect to registry ${registry} (${code}) while fetching ${what}: is the host right and the registry running?`, undefined, method, safe, false, { cause: e });
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new RegistryError(`connection to ${registry} failed (${code ?? msg}) during ${method} ${safe} for ${what}`, undefined, method, safe, code !== undefined && TEMPORARY_CODES.has(code), { cause: e });
}

/** Turns a failed response into a RegistryError, reading the distribution error body. */
export async function statusError(t: HttpTransport, res: RegistryResponse, method: string, url: string, what: string, registry: string): Promise<RegistryError> {
  const detail = await errorDetail(t, res, registry);
  const safe = redact(url);
  const s = res.status;
  const suffix = detail ? ` (${s} ${detail})` : ` (${s})`;
  if (s === 401 || s === 403) {
    return new RegistryError(`login to ${registry} needed: ${what} was refused${suffix}; add credentials to ~/.docker/config.json or $REGISTRY_AUTH_FILE`, s, method, safe, false);
  }
  if (s === 404) return new RegistryError(`${what} not found: repository or tag${suffix}`, s, method, safe, false);
  if (s === 429) return new RegistryError(`registry ${registry} is rate limiting ${method} ${safe} for ${what}${suffix}`, s, method, safe, true);
  if (s >= 500) return new RegistryError(`registry ${registry} failed ${method} ${safe} for ${what}${suffix}`, s, method, safe, s !== 501 && s !== 505);
  return new RegistryError(`registry ${registry} refused ${method} ${safe} for ${what}${suffix}`, s, method, safe, s === 408);
}

/** The first line of an error document: only its first bytes are read, however long or slow it is. */
async function errorDetail(t: HttpTransport, res: RegistryResponse, registry: string): Promise<string> {
  try {
    const prefix = await readBodyPrefix(res, {
      limit: ERROR_DETAIL_BYTES,
      deadlineMs: Math.min(t.options.timeoutMs, 10_000),
      what: `the error document from ${registry}`,
      signal: t.options.signal,
    });
    const text = prefix.toString("utf8");
    try {
      const json = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
      if (json.errors?.length) return json.errors.map((e) => [e.code, e.message].filter(Boolean).join(": ")).join("; ");
    } catch {
      // not JSON: fall through to the raw text
    }
    return text.trim().split("\n")[0]!.slice(0, 200);
  } catch (e) {
    if (t.options.signal?.aborted) throw t.options.signal.reason;
    return "";
  }
}

export function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

/** A registry that stopped answering (no headers, or no body bytes, within the idle timeout). */
export function isTimeout(e: unknown): boolean {
  return TIMEOUT_CODES.has(errorCode(e) ?? "");
}

/** A dropped or timed-out connection (not a disk or programming error). */
export function isConnectionError(e: unknown): boolean {
  const code = errorCode(e);
  return code !== undefined && TEMPORARY_CODES.has(code);
}

export function errorCode(e: unknown): string | undefined {
  return findCause(e, (c) => typeof c.code === "string")?.code;
}

const PUBLIC_PARAMS = new Set(["digest", "mount", "from", "service", "scope", "n", "last"]);

/** Drops userinfo and query values (upload state, signed storage URLs) from a URL for messages. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    for (const k of [...u.searchParams.keys()]) if (!PUBLIC_PARAMS.has(k)) u.searchParams.set(k, "REDACTED");
    return u.toString();
  } catch {
    // A path without a host (the registry is named beside it in messages).
    return url.startsWith("/") ? url.split("?")[0]! : "<invalid url>";
  }
}
