// The HTTP connection to registries: one undici Agent (pooled keep-alive connections per host), a
// second one that skips TLS verification for hosts the user marked insecure, and the options every
// other transport file reads (timeouts, retries, notes).
import type { Readable } from "node:stream";
import type { Agent, Dispatcher } from "undici";
import { isLoopbackHost } from "../reference.ts";

/** undici takes ~170 ms to load: only runs that talk to a registry pay for it. */
let undiciModule: Promise<typeof import("undici")> | undefined;
const loadUndici = () => (undiciModule ??= import("undici"));

export type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface TransportOptions {
  /** Hosts (host[:port]) that may be spoken to over plain HTTP besides loopback (`--insecure-registry`). */
  insecure: string[];
  /** Retries after the first attempt for 429, 5xx, resets and timeouts. */
  retries: number;
  /** First backoff delay, doubled each retry (with jitter). */
  backoffMs: number;
  /** Longest `Retry-After` honoured. */
  maxRetryAfterMs: number;
  /** How long to wait for response headers, and between body chunks. */
  timeoutMs: number;
  /** Keep-alive connections per registry host. */
  connections: number;
  /** Notes worth showing the user (retries, fallbacks); never contains credentials. */
  onNote?: (message: string) => void;
  /** Ends every request, body read and backoff at once (SIGTERM, Ctrl-C). */
  signal?: AbortSignal;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData["body"];
  /** The URL that answered (after redirects), for resolving a relative `Location`. */
  url: string;
}

/** Sends single HTTP requests; retrying, authorising and redirecting are the client's. */
export class HttpTransport {
  private agent?: Agent;
  private insecureAgent?: Agent;

  constructor(readonly options: TransportOptions) {}

  /** Whether plain HTTP (and unverified TLS) is allowed for this registry. */
  isInsecure(registry: string): boolean {
    return isLoopbackHost(registry) || this.options.insecure.includes(registry);
  }

  async send(
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
    this.options.signal?.throwIfAborted();
    const res = await undici.request(url, { method, headers, body: body?.(), dispatcher, signal: this.options.signal });
    return { status: res.statusCode, headers: res.headers, body: res.body, url };
  }

  async close(): Promise<void> {
    await Promise.all([this.agent?.close(), this.insecureAgent?.close()]);
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
}

/** The first value of a header. */
export function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}
