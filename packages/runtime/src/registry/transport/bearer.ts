// How a registry asks for credentials (the WWW-Authenticate challenge) and the token flow of
// distribution's token spec: Basic credentials, if any, traded at the realm for a bearer token.
import { RegistryError } from "@mstage/core";
import type { Credentials } from "../credentials.ts";
import { isLoopbackHost } from "../reference.ts";
import { MAX_TOKEN_BYTES, readBody } from "./body.ts";
import { isTimeout, networkError, redact, statusError } from "./errors.ts";
import type { HttpTransport, RegistryResponse } from "./http.ts";
import { MAX_STALL_RETRIES, backoff, retryAfterMs } from "./retry.ts";

/** A parsed `WWW-Authenticate` challenge. */
export interface Challenge {
  scheme: "basic" | "bearer";
  params: Record<string, string>;
}

/** An Authorization header and until when it is good. */
export interface Authorization {
  header: string;
  /** ms since epoch; Infinity for Basic. */
  expires: number;
}

/** Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const values = Array.isArray(header) ? header : header ? [header] : [];
  let basic: Challenge | undefined;
  for (const value of values) {
    const m = /^\s*(\w+)\s*(.*)$/s.exec(value);
    if (!m) continue;
    const scheme = m[1]!.toLowerCase();
    if (scheme !== "bearer" && scheme !== "basic") continue;
    const params: Record<string, string> = {};
    const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
    for (let p = re.exec(m[2]!); p; p = re.exec(m[2]!)) {
      params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : p[3]!;
    }
    // Prefer bearer when a registry offers both.
    if (scheme === "bearer") return { scheme, params };
    basic = { scheme, params };
  }
  return basic;
}

export function basicHeader(c: Credentials): string {
  return "Basic " + Buffer.from(`${c.username}:${c.password}`).toString("base64");
}

/** Tokens are cached per set of scopes. */
export function scopeKey(scopes: string[]): string {
  return [...new Set(scopes)].sort().join(" ");
}

/** The token endpoint of the bearer flow, with Basic credentials if any. */
export async function fetchToken(
  t: HttpTransport,
  registry: string,
  challenge: Challenge,
  scopes: string[],
  creds: Credentials | undefined,
): Promise<Authorization> {
  const realm = challenge.params.realm;
  if (!realm) throw new RegistryError(`registry ${registry} asked for a bearer token but named no realm`, 401, "GET", redact(`https://${registry}/v2/`), false);
  const url = new URL(realm);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && (isLoopbackHost(url.host) || t.isInsecure(url.host)))) {
    throw new RegistryError(`registry ${registry} sends credentials to ${redact(realm)} over plain HTTP; refusing (allow it with --insecure-registry ${url.host})`, undefined, "GET", redact(realm), false);
  }
  if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
  for (const s of scopes) url.searchParams.append("scope", s);
  const tokenHost = url.host;
  let stalls = 0;
  for (let attempt = 0; ; ) {
    let res: RegistryResponse;
    try {
      res = await t.send(tokenHost, "GET", url.toString(), creds ? { authorization: basicHeader(creds) } : {});
    } catch (e) {
      const err = networkError(t, e, "GET", url.toString(), `a token for ${registry}`, registry);
      if (err.temporary && attempt < t.options.retries && (!isTimeout(e) || stalls++ < MAX_STALL_RETRIES)) { attempt++; await backoff(t.options, attempt, undefined, `${err.message}; retrying`); continue; }
      throw err;
    }
    if (res.status === 200) {
      const raw = await readBody(res, { limit: MAX_TOKEN_BYTES, deadlineMs: 2 * t.options.timeoutMs, what: `the token for ${registry} from ${tokenHost}`, signal: t.options.signal });
      let body: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
      try {
        body = JSON.parse(raw.toString("utf8"));
        if (body === null || typeof body !== "object") throw new Error("not an object");
      } catch {
        throw new RegistryError(`the token server of ${registry} (${tokenHost}) answered with something that is not a JSON token`, 200, "GET", redact(url.toString()), false);
      }
      const token = body.token ?? body.access_token;
      if (!token || typeof token !== "string") throw new RegistryError(`the token server of ${registry} answered without a token`, 200, "GET", redact(url.toString()), false);
      const issued = body.issued_at ? Date.parse(body.issued_at) : NaN;
      const start = Number.isFinite(issued) && Math.abs(issued - Date.now()) < 3_600_000 ? issued : Date.now();
      // A little early, so a token does not expire between our check and the registry's.
      const lifetime = (body.expires_in && body.expires_in > 0 ? body.expires_in : 60) * 1000;
      return { header: `Bearer ${token}`, expires: start + lifetime - Math.min(10_000, lifetime / 10) };
    }
    const err = await statusError(t, res, "GET", url.toString(), `a token for ${scopes.join(" ")}`, registry);
    if (err.temporary && attempt < t.options.retries) { attempt++; await backoff(t.options, attempt, retryAfterMs(res.headers["retry-after"]), `${err.message}; retrying`); continue; }
    throw err;
  }
}
