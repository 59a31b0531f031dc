// The HTTP side of the distribution API: one undici Agent (pooled keep-alive connections per
// host), the ping that decides https/http and learns how the registry authenticates, tokens cached
// per scope until they expire, retries with backoff on 429/5xx/resets, and errors whose URLs are
// redacted. pull.ts and push.ts speak the API through request().
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { Agent, Dispatcher } from "undici";

/** undici takes ~170 ms to load: only runs that talk to a registry pay for it. */
let undiciModule: Promise<typeof import("undici")> | undefined;
const loadUndici = () => (undiciModule ??= import("undici"));
import { RegistryError, UserError } from "@mstage/core";
import { basicHeader, fileCredentials, parseChallenge, type Challenge, type CredentialSource, type Credentials } from "./auth.ts";
import { apiHost, isLoopbackHost } from "./reference.ts";

export interface RegistryClientOptions {
  /** Hosts (host[:port]) that may be spoken to over plain HTTP besides loopback (`--insecure-registry`). */
  insecure?: string[];
  /** Where credentials come from; default `$REGISTRY_AUTH_FILE`, then `~/.docker/config.json`. */
  credentials?: CredentialSource;
  /** Retries after the first attempt for 429, 5xx, resets and timeouts; default 4. */
  retries?: number;
  /** First backoff delay, doubled each retry (with jitter); default 250 ms. */
  backoffMs?: number;
  /** Longest `Retry-After` honoured; default 60 s. */
  maxRetryAfterMs?: number;
  /** How long to wait for response headers, and between body chunks; default 120 s. */
  timeoutMs?: number;
  /** Keep-alive connections per registry host; default 8. */
  connections?: number;
  /** Notes worth showing the user (retries, fallbacks); never contains credentials. */
  onNote?: (message: string) => void;
}

export type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RegistryRequest {
  method: Method;
  /** `/v2/…` path (with query) or an absolute URL the registry gave us (upload `Location`). */
  path: string;
  /** Token scopes the request needs, e.g. `repository:library/golang:pull`. */
  scopes: string[];
  headers?: Record<string, string>;
  /** Makes the body afresh for each attempt, so retries and auth round trips can resend it. */
  body?: () => Readable | Uint8Array | string;
  /** Statuses that count as success; anything else becomes a RegistryError. */
  ok: number[];
  /** What is being fetched, for messages: `manifest docker.io/library/golang:1.22`. */
  what: string;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData["body"];
  /** The URL that answered (after redirects), for resolving a relative `Location`. */
  url: string;
}

interface Authorization {
  header: string;
  /** ms since epoch; Infinity for Basic. */
  expires: number;
}

interface HostState {
  /** `https://host` or `http://host`, decided by the ping. */
  base: string;
  /** null: the registry let the ping through without credentials. */
  challenge: Challenge | null;
  tokens: Map<string, Authorization>;
}

const TEMPORARY_CODES = new Set([
  "ECONNRESET", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "ENETUNREACH", "EHOSTUNREACH",
  "UND_ERR_SOCKET", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_CLOSED",
]);
const TIMEOUT_CODES = new Set(["ETIMEDOUT", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/** A connection to any number of registries; share one per process and close() it at the end. */
export class RegistryClient {
  readonly options: Required<Omit<RegistryClientOptions, "onNote" | "credentials">> & Pick<RegistryClientOptions, "onNote">;
  private readonly credentials: CredentialSource;
  private agent?: Agent;
  private insecureAgent?: Agent;
  private readonly hosts = new Map<string, Promise<HostState>>();
  private readonly credentialCache = new Map<string, Promise<Credentials | undefined>>();

  constructor(options: RegistryClientOptions = {}) {
    this.options = {
      insecure: options.insecure ?? [],
      retries: options.retries ?? 4,
      backoffMs: options.backoffMs ?? 250,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
      timeoutMs: options.timeoutMs ?? 120_000,
      connections: options.connections ?? 8,
      onNote: options.onNote,
    };
    this.credentials = options.credentials ?? fileCredentials();
  }

  async close(): Promise<void> {
    await Promise.all([this.agent?.close(), this.insecureAgent?.close()]);
  }

  /** Whether plain HTTP (and unverified TLS) is allowed for this registry. */
  isInsecure(registry: string): boolean {
    return isLoopbackHost(registry) || this.options.insecure.includes(registry);
  }

  /**
   * Sends one API request: authorises it for its scopes, follows redirects, retries what is worth
   * retrying, and returns a success response whose body the caller must consume or dump.
   */
  async request(registry: string, req: RegistryRequest): Promise<RegistryResponse> {
    const host = await this.host(registry);
    const scopes = [...req.scopes];
    let url = absolute(host.base, req.path);
    let authRetried = false;
    let redirects = 0;
    for (let attempt = 0; ; ) {
      const sameOrigin = new URL(url).origin === host.base;
      const auth = sameOrigin ? await this.authorization(registry, host, scopes) : undefined;
      let res: RegistryResponse;
      try {
        res = await this.send(registry, req.method, url, { ...req.headers, ...(auth ? { authorization: auth } : {}) }, req.body);
      } catch (e) {
        // A failing request body (a corrupt local blob) is the caller's error, not the network's.
        if (e instanceof UserError && !(e instanceof RegistryError)) throw e;
        const err = this.networkError(e, req.method, url, req.what, registry);
        if (err.temporary && attempt < this.options.retries) {
          attempt++;
          await this.backoff(attempt, undefined, `${err.message}; retrying`);
          continue;
        }
        throw err;
      }
      if (req.ok.includes(res.status)) return res;

      if (REDIRECTS.has(res.status) && (req.method === "GET" || req.method === "HEAD") && res.headers.location) {
        await res.body.dump();
        if (++redirects > MAX_REDIRECTS) throw new RegistryError(`too many redirects fetching ${req.what}`, res.status, req.method, redact(url), false);
        url = new URL(String(res.headers.location), url).toString();
        continue;
      }
      if (res.status === 401 && sameOrigin && !authRetried) {
        await res.body.dump();
        authRetried = true;
        this.challenged(host, scopes, parseChallenge(res.headers["www-authenticate"]));
        continue;
      }
      const err = await this.statusError(res, req.method, url, req.what, registry);
      if (err.temporary && attempt < this.options.retries) {
        attempt++;
        await this.backoff(attempt, retryAfterMs(res.headers["retry-after"]), `${err.message}; retrying`);
        continue;
      }
      throw err;
    }
  }

  private makeAgent(undici: typeof import("undici"), verify: boolean): Agent {
    return new undici.Agent({
      connections: this.options.connections,
      headersTimeout: this.options.timeoutMs,
      bodyTimeout: this.options.timeoutMs,
      connectTimeout: Math.min(this.options.timeoutMs, 30_000),
      keepAliveTimeout: 30_000,
      connect: verify ? {} : { rejectUnauthorized: false },
    });
  }

  private async send(
    registry: string,
    method: Method,
    url: string,
    headers: Record<string, string>,
    body?: () => Readable | Uint8Array | string,
  ): Promise<RegistryResponse> {
    const undici = await loadUndici();
    const dispatcher =
      this.isInsecure(registry) && url.startsWith("https:")
        ? (this.insecureAgent ??= this.makeAgent(undici, false))
        : (this.agent ??= this.makeAgent(undici, true));
    const res = await undici.request(url, { method, headers, body: body?.(), dispatcher });
    return { status: res.statusCode, headers: res.headers, body: res.body, url };
  }

  /** Pings `/v2/` once per registry: picks the scheme and records how it wants to authenticate. */
  private host(registry: string): Promise<HostState> {
    let state = this.hosts.get(registry);
    if (!state) {
      state = this.ping(registry);
      this.hosts.set(registry, state);
      state.catch(() => this.hosts.delete(registry));
    }
    return state;
  }

  private async ping(registry: string): Promise<HostState> {
    const hostPort = apiHost(registry);
    // Loopback registries are nearly always plain HTTP: asking that first saves a TLS handshake
    // (and loading the CA bundle); insecure remote hosts are tried over TLS first, like Docker does.
    const schemes = isLoopbackHost(registry) ? ["http", "https"] : this.isInsecure(registry) ? ["https", "http"] : ["https"];
    let lastError: RegistryError | undefined;
    for (const [i, scheme] of schemes.entries()) {
      const base = `${scheme}://${hostPort}`;
      const hasFallback = i + 1 < schemes.length;
      for (let attempt = 0; ; attempt++) {
        let res: RegistryResponse;
        try {
          res = await this.send(registry, "GET", `${base}/v2/`, {});
        } catch (e) {
          const err = this.networkError(e, "GET", `${base}/v2/`, `registry ${registry}`, registry);
          lastError = err;
          // A TLS handshake with a plain-HTTP server (or the reverse) fails at once: try the other scheme.
          if (hasFallback && !TIMEOUT_CODES.has(errorCode(e) ?? "")) break;
          if (!err.temporary || attempt >= this.options.retries) throw err;
          await this.backoff(attempt + 1, undefined, `${err.message}; retrying`);
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
        const err = await this.statusError(res, "GET", `${base}/v2/`, `registry ${registry}`, registry);
        if (attempt >= this.options.retries) throw err;
        await this.backoff(attempt + 1, retryAfterMs(res.headers["retry-after"]), `${err.message}; retrying`);
      }
    }
    throw lastError ?? new RegistryError(`registry ${registry} answers neither HTTPS nor HTTP requests for /v2/`, 400, "GET", `${schemes[0]}://${hostPort}/v2/`, false);
  }

  private async authorization(registry: string, host: HostState, scopes: string[]): Promise<string | undefined> {
    const challenge = host.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") {
      const creds = await this.credentialsFor(registry, scopes);
      return creds ? basicHeader(creds) : undefined;
    }
    const key = scopeKey(scopes);
    const cached = host.tokens.get(key);
    if (cached && cached.expires > Date.now()) return cached.header;
    const token = await this.fetchToken(registry, challenge, scopes);
    host.tokens.set(key, token);
    return token.header;
  }

  // A 401 on a request means the token expired, lacks a scope, or the registry changed its mind.
  private challenged(host: HostState, scopes: string[], challenge: Challenge | undefined): void {
    host.tokens.delete(scopeKey(scopes));
    if (challenge) host.challenge = challenge;
    const extra = challenge?.params.scope;
    if (extra) for (const s of extra.split(" ")) if (s && !scopes.includes(s)) scopes.push(s);
  }

  private credentialsFor(registry: string, scopes: string[]): Promise<Credentials | undefined> {
    const repo = scopes.map((s) => /^repository:([^:]+):/.exec(s)?.[1]).find((r) => r !== undefined);
    const key = `${registry}/${repo ?? ""}`;
    let c = this.credentialCache.get(key);
    if (!c) {
      c = this.credentials(registry, repo);
      this.credentialCache.set(key, c);
    }
    return c;
  }

  /** The token endpoint of the bearer flow (distribution's token spec), with Basic credentials if any. */
  private async fetchToken(registry: string, challenge: Challenge, scopes: string[]): Promise<Authorization> {
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryError(`registry ${registry} asked for a bearer token but named no realm`, 401, "GET", redact(`https://${registry}/v2/`), false);
    const url = new URL(realm);
    if (url.protocol !== "https:" && !(url.protocol === "http:" && (isLoopbackHost(url.host) || this.isInsecure(url.host)))) {
      throw new RegistryError(`registry ${registry} sends credentials to ${redact(realm)} over plain HTTP; refusing (allow it with --insecure-registry ${url.host})`, undefined, "GET", redact(realm), false);
    }
    if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
    for (const s of scopes) url.searchParams.append("scope", s);
    const creds = await this.credentialsFor(registry, scopes);
    const tokenHost = url.host;
    for (let attempt = 0; ; ) {
      let res: RegistryResponse;
      try {
        res = await this.send(tokenHost, "GET", url.toString(), creds ? { authorization: basicHeader(creds) } : {});
      } catch (e) {
        const err = this.networkError(e, "GET", url.toString(), `a token for ${registry}`, registry);
        if (err.temporary && attempt < this.options.retries) { attempt++; await this.backoff(attempt, undefined, `${err.message}; retrying`); continue; }
        throw err;
      }
      if (res.status === 200) {
        const body = (await res.body.json()) as { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
        const token = body.token ?? body.access_token;
        if (!token) throw new RegistryError(`the token server of ${registry} answered without a token`, 200, "GET", redact(url.toString()), false);
        const issued = body.issued_at ? Date.parse(body.issued_at) : NaN;
        const start = Number.isFinite(issued) && Math.abs(issued - Date.now()) < 3_600_000 ? issued : Date.now();
        // A little early, so a token does not expire between our check and the registry's.
        const lifetime = (body.expires_in && body.expires_in > 0 ? body.expires_in : 60) * 1000;
        return { header: `Bearer ${token}`, expires: start + lifetime - Math.min(10_000, lifetime / 10) };
      }
      const err = await this.statusError(res, "GET", url.toString(), `a token for ${scopes.join(" ")}`, registry);
      if (err.temporary && attempt < this.options.retries) { attempt++; await this.backoff(attempt, retryAfterMs(res.headers["retry-after"]), `${err.message}; retrying`); continue; }
      throw err;
    }
  }

  private async backoff(attempt: number, retryAfter: number | undefined, note: string): Promise<void> {
    const base = this.options.backoffMs * 2 ** (attempt - 1);
    const delay = retryAfter !== undefined ? Math.min(retryAfter, this.options.maxRetryAfterMs) : base + Math.random() * base * 0.25;
    this.options.onNote?.(`${note} in ${(delay / 1000).toFixed(1)} s (attempt ${attempt + 1} of ${this.options.retries + 1})`);
    await sleep(delay);
  }

  /** A RegistryError for a failed connection or body stream (temporary when worth a retry). */
  networkError(e: unknown, method: string, url: string, what: string, registry: string): RegistryError {
    if (e instanceof RegistryError) return e;
    const code = errorCode(e);
    const safe = redact(url);
    if (code && TIMEOUT_CODES.has(code)) {
      return new RegistryError(`timed out after ${seconds(this.options.timeoutMs)} talking to ${registry} (${method} ${safe}) while fetching ${what}`, undefined, method, safe, true, { cause: e });
    }
    if (code && (code.startsWith("ERR_SSL_") || code === "EPROTO") && url.startsWith("https:") && !this.isInsecure(registry)) {
      return new RegistryError(`registry ${registry} does not answer HTTPS (${code}); if it is a plain-HTTP registry you trust, allow it with --insecure-registry ${registry}`, undefined, method, safe, false, { cause: e });
    }
    if (code === "ECONNREFUSED" || code === "ENOTFOUND") {
      return new RegistryError(`cannot connect to registry ${registry} (${code}) while fetching ${what}: is the host right and the registry running?`, undefined, method, safe, false, { cause: e });
    }
    const msg = e instanceof Error ? e.message : String(e);
    return new RegistryError(`connection to ${registry} failed (${code ?? msg}) during ${method} ${safe} for ${what}`, undefined, method, safe, code !== undefined && TEMPORARY_CODES.has(code), { cause: e });
  }

  /** Turns a failed response into a RegistryError, reading the distribution error body. */
  async statusError(res: RegistryResponse, method: string, url: string, what: string, registry: string): Promise<RegistryError> {
    const detail = await errorDetail(res);
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
}

async function errorDetail(res: RegistryResponse): Promise<string> {
  try {
    const text = (await res.body.text()).slice(0, 4096);
    try {
      const json = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
      if (json.errors?.length) return json.errors.map((e) => [e.code, e.message].filter(Boolean).join(": ")).join("; ");
    } catch {
      // not JSON: fall through to the raw text
    }
    return text.trim().split("\n")[0]!.slice(0, 200);
  } catch {
    return "";
  }
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

/** A dropped or timed-out connection (not a disk or programming error). */
export function isConnectionError(e: unknown): boolean {
  const code = errorCode(e);
  return code !== undefined && TEMPORARY_CODES.has(code);
}

function errorCode(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/** Seconds or an HTTP date, in ms; undefined when absent or nonsense. */
export function retryAfterMs(h: string | string[] | undefined): number | undefined {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
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

function absolute(base: string, path: string): string {
  return new URL(path, base + "/").toString();
}

function scopeKey(scopes: string[]): string {
  return [...new Set(scopes)].sort().join(" ");
}

/** The first value of a header. */
export function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}
