// The distribution API client: one request() that authorises for its scopes, follows redirects and
// retries what is worth retrying. The transport concerns live in transport/ (as go-containerregistry's
// transport/ does): http.ts (connections), ping.ts (scheme and challenge), bearer.ts (tokens),
// retry.ts (backoff), errors.ts (RegistryErrors, redaction). pull.ts and push.ts speak the API
// through request().
import type { Readable } from "node:stream";
import { RegistryError, UserError } from "@mstage/core";
import { fileCredentials, type CredentialSource, type Credentials } from "./credentials.ts";
import { insecureHosts, loadRegistriesConf, type RegistriesConf } from "./registries.ts";
import { basicHeader, fetchToken, parseChallenge, scopeKey, type Challenge } from "./transport/bearer.ts";
import { isTimeout, networkError, redact, statusError } from "./transport/errors.ts";
import { HttpTransport, type Method, type RegistryResponse, type TransportOptions } from "./transport/http.ts";
import { ping, type HostState } from "./transport/ping.ts";
import { MAX_STALL_RETRIES, backoff, retryAfterMs } from "./transport/retry.ts";

export { header } from "./transport/http.ts";
export type { Method, RegistryResponse } from "./transport/http.ts";
export { isConnectionError, isTimeout, redact } from "./transport/errors.ts";
export { MAX_STALL_RETRIES } from "./transport/retry.ts";
export { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, readBody } from "./transport/body.ts";
export { retryAfterMs } from "./transport/retry.ts";

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
  /**
   * How long to wait for response headers, and between body chunks; default 30 s. A body read whole
   * (token, manifest) gets twice this for all of it; a stall is retried once (MAX_STALL_RETRIES).
   */
  timeoutMs?: number;
  /** Keep-alive connections per registry host; default 8. */
  connections?: number;
  /** Notes worth showing the user (retries, fallbacks); never contains credentials. */
  onNote?: (message: string) => void;
  /** Ends every request, body read and backoff at once (SIGTERM, Ctrl-C). */
  signal?: AbortSignal;
  /** Mirrors, insecure registries and short-name search; default the registries.conf in force. */
  registries?: RegistriesConf;
}

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

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/** A connection to any number of registries; share one per process and close() it at the end. */
export class RegistryClient {
  readonly options: TransportOptions;
  private readonly transport: HttpTransport;
  private readonly credentials: CredentialSource;
  private readonly hosts = new Map<string, Promise<HostState>>();
  private readonly credentialCache = new Map<string, Promise<Credentials | undefined>>();
  private conf?: RegistriesConf;

  constructor(options: RegistryClientOptions = {}) {
    this.conf = options.registries;
    const client = this;
    let insecure: string[] | undefined;
    this.options = {
      // Read on the first request: a build that talks to no registry reads no registries.conf
      // (nor loads the TOML parser, ~8 ms of every start).
      get insecure() {
        return (insecure ??= [...(options.insecure ?? []), ...insecureHosts(client.registries)]);
      },
      retries: options.retries ?? 4,
      backoffMs: options.backoffMs ?? 250,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
      timeoutMs: options.timeoutMs ?? 30_000,
      connections: options.connections ?? 8,
      onNote: options.onNote,
      signal: options.signal,
    };
    this.transport = new HttpTransport(this.options);
    this.credentials = options.credentials ?? fileCredentials();
  }

  /** What pulls go through: mirrors and short-name search (registries.ts); read on first use. */
  get registries(): RegistriesConf {
    return (this.conf ??= loadRegistriesConf());
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  /** Whether plain HTTP (and unverified TLS) is allowed for this registry. */
  isInsecure(registry: string): boolean {
    return this.transport.isInsecure(registry);
  }

  /**
   * Sends one API request: authorises it for its scopes, follows redirects, retries what is worth
   * retrying, and returns a success response whose body the caller must consume or dump.
   */
  async request(registry: string, req: RegistryRequest): Promise<RegistryResponse> {
    const host = await this.host(registry);
    const scopes = [...req.scopes];
    let url = new URL(req.path, host.base + "/").toString();
    let authRetried = false;
    let redirects = 0;
    let stalls = 0;
    for (let attempt = 0; ; ) {
      const sameOrigin = new URL(url).origin === host.base;
      const auth = sameOrigin ? await this.authorization(registry, host, scopes) : undefined;
      let res: RegistryResponse;
      try {
        res = await this.transport.send(registry, req.method, url, { ...req.headers, ...(auth ? { authorization: auth } : {}) }, req.body);
      } catch (e) {
        if (this.options.signal?.aborted) throw this.options.signal.reason;
        // A failing request body (a corrupt local blob) is the caller's error, not the network's.
        if (e instanceof UserError && !(e instanceof RegistryError)) throw e;
        const err = this.networkError(e, req.method, url, req.what, registry);
        if (err.temporary && attempt < this.options.retries && (!isTimeout(e) || stalls++ < MAX_STALL_RETRIES)) {
          attempt++;
          await backoff(this.options, attempt, undefined, `${err.message}; retrying`);
          continue;
        }
        throw err;
      }
      if (req.ok.includes(res.status)) return res;

      if (REDIRECTS.has(res.status) && (req.method === "GET" || req.method === "HEAD") && res.headers.location) {
        await res.body.dump();
        if (++redirects > MAX_REDIRECTS) throw new RegistryError(`too many redirects fetching ${req.what}`, res.status, req.method, redact(url), false);
        const next = new URL(String(res.headers.location), url);
        // Credentials and content were promised over TLS: a redirect off it is refused, as a browser would.
        if (url.startsWith("https:") && next.protocol !== "https:") {
          throw new RegistryError(`registry ${registry} redirected ${req.what} from HTTPS to ${redact(next.toString())}; refusing to leave TLS`, res.status, req.method, redact(url), false);
        }
        url = next.toString();
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
        await backoff(this.options, attempt, retryAfterMs(res.headers["retry-after"]), `${err.message}; retrying`);
        continue;
      }
      throw err;
    }
  }

  /** A RegistryError for a failed connection or body stream (temporary when worth a retry). */
  networkError(e: unknown, method: string, url: string, what: string, registry: string): RegistryError {
    return networkError(this.transport, e, method, url, what, registry);
  }

  /** Turns a failed response into a RegistryError, reading the distribution error body. */
  statusError(res: RegistryResponse, method: string, url: string, what: string, registry: string): Promise<RegistryError> {
    return statusError(this.transport, res, method, url, what, registry);
  }

  /** Pings `/v2/` once per registry: picks the scheme and records how it wants to authenticate. */
  private host(registry: string): Promise<HostState> {
    let state = this.hosts.get(registry);
    if (!state) {
      state = ping(this.transport, registry);
      this.hosts.set(registry, state);
      state.catch(() => this.hosts.delete(registry));
    }
    return state;
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
    const token = await fetchToken(this.transport, registry, challenge, scopes, await this.credentialsFor(registry, scopes));
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
}
