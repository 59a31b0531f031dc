// Pulling: resolve a tag to a digest, pick the platform out of an index, and stream config and
// layers into a blob sink, several at a time, each verified against its digest on the way in;
// into a store, each layer is extracted while it downloads (layer/unpack.ts).
import { Transform, pipeline, type Readable, type TransformCallback } from "node:stream";
import { RegistryError } from "@mstage/core";
import { checkUnpackable, compressionOfMediaType } from "../layer/decompress.ts";
import { commitStagedLayers, discardStagedLayers, stageLayer, type StagedLayer } from "../layer/unpack.ts";
import type { Store } from "../store/store.ts";
import { parseDigest, type Digest } from "../oci/digest.ts";
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, MAX_STALL_RETRIES, RegistryClient, header, isConnectionError, isTimeout, readBody, type RegistryClientOptions } from "./client.ts";
import { MediaType, isIndexType, type Descriptor, type ImageConfig, type ImageManifest } from "../oci/types.ts";
import { MANIFEST_ACCEPT, manifestDigest, parseManifest } from "./manifest.ts";
import { formatPlatform, hostPlatform, parsePlatform, selectPlatform, type Platform } from "@mstage/core";
import { formatReference, manifestSelector, parseReference, referenceName, withDigest, type Reference } from "./reference.ts";
import { pullEndpoints } from "./registries.ts";
import { TransferMeter, type TransferProgress } from "./transfer.ts";

/**
 * Where pulled blobs go. The store's `Store` satisfies it; anything content-addressed that verifies
 * `expected` and discards a failed write will do.
 */
export interface BlobSink {
  hasBlob(digest: Digest): boolean | Promise<boolean>;
  /**
   * Writes atomically; rejects (keeping nothing) when the stream errors or the bytes do not hash to
   * `expected` — then with an error named "DigestMismatchError", like the store's.
   */
  writeBlob(source: Readable | Uint8Array, expected?: Digest, opts?: { size?: number; what?: string }): Promise<{ digest: Digest; size: number }>;
  openBlob(digest: Digest): Readable;
}

export interface PulledLayer {
  /** Digest of the blob as stored (compressed). */
  digest: Digest;
  /** Digest of the uncompressed tar, from the config's rootfs.diff_ids. */
  diffId: Digest;
  size: number;
  mediaType: string;
}

export interface PulledImage {
  /** The reference pulled, pinned to the digest its tag resolved to. */
  ref: Reference;
  /** What the tag points to: an index digest for multi-platform images, else the manifest digest. */
  resolvedDigest: Digest;
  /** The platform image's manifest digest. */
  manifestDigest: Digest;
  manifestMediaType: string;
  manifestBytes: Uint8Array;
  manifest: ImageManifest;
  configDigest: Digest;
  config: ImageConfig;
  layers: PulledLayer[];
}

export type PullProgress =
  | { kind: "blob"; digest: Digest; size: number; status: "present" | "started" | "done" }
  | { kind: "bytes"; digest: Digest; size: number; done: number };

export interface PullOptions extends RegistryClientOptions {
  /** `os/arch[/variant]` or a Platform; default the host's. */
  platform?: string | Platform;
  store: BlobSink;
  /** Blobs downloaded at once; default 4. */
  concurrency?: number;
  onProgress?: (p: PullProgress) => void;
  /** The image's layers as a whole: bytes done of the total, and the rate. */
  onTransfer?: (p: TransferProgress) => void;
  /**
   * Extract each layer into this store (the one `store` is) while it downloads, in parallel; the
   * layers' blobs and dirs become trusted together, after one sync, once every digest matched.
   */
  extractTo?: Store;
  /** Reuse a client (its connections and tokens); otherwise one is made and closed. */
  client?: RegistryClient;
}

interface FetchedManifest {
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
}

function toRef(ref: string | Reference): Reference {
  return typeof ref === "string" ? parseReference(ref) : ref;
}

function toPlatform(p: string | Platform | undefined): Platform {
  return p === undefined ? hostPlatform() : typeof p === "string" ? parsePlatform(p) : p;
}

async function withClient<T>(opts: RegistryClientOptions & { client?: RegistryClient }, fn: (c: RegistryClient) => Promise<T>): Promise<T> {
  if (opts.client) return fn(opts.client);
  const client = new RegistryClient(opts);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/**
 * The digest a reference points to right now (HEAD, or GET when the registry sends no
 * Docker-Content-Digest). For a multi-platform image it is the index digest, so a pin in
 * images.lock holds for every platform; a reference already pinned is returned as is.
 */
export async function resolveDigest(ref: string | Reference, opts: RegistryClientOptions & { client?: RegistryClient } = {}): Promise<Digest> {
  if (typeof ref !== "string" && ref.digest) return ref.digest;
  if (typeof ref === "string" && toRef(ref).digest) return toRef(ref).digest!;
  return withClient(opts, (client) =>
    throughEndpoints(client, ref, "resolved", (r) => resolveAt(client, r)),
  );
}

/**
 * Runs `fn` against each place registries.conf says `ref` can come from (mirrors first, then the
 * registry; for a short name, each search registry) until one has it; notes which mirror served.
 */
async function throughEndpoints<T>(client: RegistryClient, ref: string | Reference, verb: string, fn: (r: Reference) => Promise<T>): Promise<T> {
  const list = pullEndpoints(ref, client.registries);
  const written = typeof ref === "string" ? ref : formatReference(ref);
  let primary: unknown;
  let last: unknown;
  for (const [i, e] of list.entries()) {
    try {
      const out = await fn(e.ref);
      if (e.alias) client.options.onNote?.(`${written} is ${e.alias.name} by the short-name alias in ${e.alias.file}`);
      if (e.mirror) client.options.onNote?.(`${written} ${verb} through mirror ${e.mirror} (${e.file ?? client.registries.file ?? "registries.conf"})`);
      else if (e.ref.registry !== list[0]!.ref.registry) client.options.onNote?.(`${written} ${verb} from ${e.ref.registry}`);
      return out;
    } catch (err) {
      // A mirror or search registry that lacks the image (or is down) hands over to the next one.
      if (!(err instanceof RegistryError)) throw err;
      last = err;
      if (!e.mirror) primary ??= err;
      if (i < list.length - 1) client.options.onNote?.(`${formatReference(e.ref)}: ${err.message}; trying ${formatReference(list[i + 1]!.ref)}`);
    }
  }
  throw primary ?? last;
}

async function resolveAt(client: RegistryClient, r: Reference): Promise<Digest> {
  const res = await client.request(r.registry, {
    method: "HEAD",
    path: `/v2/${r.repository}/manifests/${manifestSelector(r)}`,
    scopes: [pullScope(r)],
    headers: { accept: MANIFEST_ACCEPT },
    ok: [200],
    what: formatReference(r),
  });
  await res.body.dump();
  const d = header(res.headers, "docker-content-digest");
  if (d) {
    try {
      return parseDigest(d);
    } catch {
      // not a sha256 digest: hash the bytes ourselves below
    }
  }
  return (await fetchManifest(client, r, manifestSelector(r))).digest;
}

/** Fetches manifest bytes by tag or digest and checks them against the digest asked for. */
export async function fetchManifest(client: RegistryClient, r: Reference, selector: string): Promise<FetchedManifest> {
  const what = selector.startsWith("sha256:") ? `${referenceName(r)}@${selector}` : formatReference(r);
  const res = await client.request(r.registry, {
    method: "GET",
    path: `/v2/${r.repository}/manifests/${selector}`,
    scopes: [pullScope(r)],
    headers: { accept: MANIFEST_ACCEPT },
    ok: [200],
    what,
  });
  const bytes = await readBody(res, { limit: MAX_MANIFEST_BYTES, deadlineMs: 2 * client.options.timeoutMs, what: `manifest ${what} from ${r.registry}`, signal: client.options.signal });
  const digest = manifestDigest(bytes);
  const want = selector.startsWith("sha256:") ? selector : header(res.headers, "docker-content-digest");
  if (want && want.startsWith("sha256:") && want !== digest) {
    throw new RegistryError(`manifest ${what} from ${r.registry} does not match its digest: want ${want}, got ${digest}`, 200, "GET", what, false);
  }
  const contentType = header(res.headers, "content-type") ?? "";
  return { digest, mediaType: contentType.split(";")[0]!.trim(), bytes };
}

/**
 * Pulls an image into `store`: manifest (through an index, choosing the platform), config, and
 * layers not already there, `concurrency` at a time. Every blob is verified against its digest
 * while it streams; a mismatch fails the pull and leaves nothing stored for that blob.
 */
export async function pullImage(ref: string | Reference, opts: PullOptions): Promise<PulledImage> {
  const platform = toPlatform(opts.platform);
  return withClient(opts, async (client) => {
    // The endpoint that has the manifest serves the whole image.
    const { r, top } = await throughEndpoints(client, ref, "pulled", async (r) => ({ r, top: await fetchManifest(client, r, manifestSelector(r)) }));
    let image = top;
    let parsed = parseManifest(top.bytes, top.mediaType, `manifest ${formatReference(r)}`);
    if (parsed.kind === "index") {
      const entry = selectPlatform(parsed.index.manifests.filter((m) => !isIndexType(m.mediaType)), platform, formatReference(r));
      image = await fetchManifest(client, r, entry.digest);
      parsed = parseManifest(image.bytes, image.mediaType, `manifest ${referenceName(r)}@${entry.digest}`);
      if (parsed.kind !== "image") throw new RegistryError(`${formatReference(r)} for ${formatPlatform(platform)} is a nested index, which is not supported`, 200, "GET", formatReference(r), false);
    }
    const manifest = parsed.manifest;
    for (const l of manifest.layers) checkUnpackable(compressionOfMediaType(l.mediaType) ?? "none", formatReference(r));

    const configBytes = await fetchBlobBytes(client, r, manifest.config, opts.store);
    const config = parseConfig(configBytes, `config of ${formatReference(r)}`);
    if (config.rootfs.diff_ids.length !== manifest.layers.length) {
      throw new RegistryError(`${formatReference(r)}: its config lists ${config.rootfs.diff_ids.length} layer diff ids but its manifest ${manifest.layers.length} layers`, 200, "GET", formatReference(r), false);
    }
    const platformName = [config.os, config.architecture, config.variant].filter(Boolean).join("/");
    if (config.os && config.architecture && !(config.os === platform.os && config.architecture === platform.architecture) && parsed.kind === "image" && top === image) {
      // A single-platform image for another platform: allowed (the user may emulate), but it is worth knowing.
      opts.onNote?.(`${formatReference(r)} is for ${platformName}, not ${formatPlatform(platform)}`);
    }

    const meter = new TransferMeter(typeof ref === "string" ? ref : formatReference(ref), "pull", manifest.layers.reduce((n, l) => n + l.size, 0), opts.onTransfer);
    const onProgress = (p: PullProgress) => {
      if (p.kind === "bytes") meter.progress(p.digest, p.done);
      else if (p.status === "present") meter.skip(p.size);
      opts.onProgress?.(p);
    };
    const layers = manifest.layers.map((l, i) => ({ ...l, diffId: config.rootfs.diff_ids[i]! }));
    if (opts.extractTo) {
      const into = opts.extractTo;
      const staged: StagedLayer[] = [];
      try {
        await forEachLimit(layers, opts.concurrency ?? 4, async (layer) => {
          const s = await fetchLayerExtracted(client, r, layer, into, onProgress);
          if (s) staged.push(s);
        });
      } catch (e) {
        await discardStagedLayers(staged);
        throw e;
      }
      await commitStagedLayers(into, staged);
    } else {
      await forEachLimit(layers, opts.concurrency ?? 4, (layer) => fetchBlobToStore(client, r, layer, opts.store, onProgress));
    }
    meter.finish();
    await opts.store.writeBlob(image.bytes, image.digest);

    return {
      ref: withDigest(r, top.digest),
      resolvedDigest: top.digest,
      manifestDigest: image.digest,
      manifestMediaType: manifest.mediaType ?? MediaType.ociManifest,
      manifestBytes: image.bytes,
      manifest,
      configDigest: manifest.config.digest,
      config,
      layers: manifest.layers.map((l, i) => ({ digest: l.digest, diffId: config.rootfs.diff_ids[i]!, size: l.size, mediaType: l.mediaType })),
    };
  });
}

function parseConfig(bytes: Uint8Array, where: string): ImageConfig {
  let doc: ImageConfig;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString("utf8")) as ImageConfig;
  } catch {
    throw new RegistryError(`${where} is not JSON`, undefined, "GET", where, false);
  }
  if (!doc || typeof doc !== "object" || !doc.rootfs || !Array.isArray(doc.rootfs.diff_ids)) {
    throw new RegistryError(`${where} has no rootfs.diff_ids`, undefined, "GET", where, false);
  }
  try {
    doc.rootfs.diff_ids = doc.rootfs.diff_ids.map((d) => parseDigest(String(d)));
  } catch (e) {
    throw new RegistryError(`${where}: ${(e as Error).message}`, undefined, "GET", where, false);
  }
  return doc;
}

/** Reads a (small) blob, from the store when present, else from the registry into the store. */
async function fetchBlobBytes(client: RegistryClient, r: Reference, d: Descriptor, store: BlobSink): Promise<Buffer> {
  if (d.size > MAX_CONFIG_BYTES) {
    throw new RegistryError(`config ${d.digest} of ${referenceName(r)} claims ${d.size} bytes, more than the ${MAX_CONFIG_BYTES} mstage reads; refusing it`, 200, "GET", referenceName(r), false);
  }
  if (!(await store.hasBlob(d.digest))) await fetchBlobToStore(client, r, d, store);
  const chunks: Buffer[] = [];
  for await (const c of store.openBlob(d.digest) as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Streams one blob into the store, verified; retries from the start when the connection drops. */
export async function fetchBlobToStore(
  client: RegistryClient,
  r: Reference,
  d: Descriptor,
  store: BlobSink,
  onProgress?: (p: PullProgress) => void,
): Promise<void> {
  if (await store.hasBlob(d.digest)) {
    onProgress?.({ kind: "blob", digest: d.digest, size: d.size, status: "present" });
    return;
  }
  await fetchWithRetries(client, r, d, onProgress, (checked) => store.writeBlob(checked, d.digest, { size: d.size, what: `blob ${d.digest} from ${referenceName(r)}` }));
}

/**
 * Downloads one layer and extracts it on the way (layer/unpack.ts) into `store`'s tmp/; returns it
 * staged, or nothing when the store has its blob already (extracted then when a build needs it).
 */
async function fetchLayerExtracted(
  client: RegistryClient,
  r: Reference,
  layer: Descriptor & { diffId: Digest },
  store: Store,
  onProgress: (p: PullProgress) => void,
): Promise<StagedLayer | undefined> {
  if (store.hasBlob(layer.digest)) {
    onProgress({ kind: "blob", digest: layer.digest, size: layer.size, status: "present" });
    return undefined;
  }
  const what = `layer ${layer.digest}`;
  try {
    return await fetchWithRetries(client, r, layer, onProgress, (checked) => stageLayer(store, checked, layer, { what, onNote: client.options.onNote }));
  } catch (e) {
    if ((e as Error).name === "DigestMismatchError" && (e as { expected?: string }).expected === layer.diffId && layer.diffId !== layer.digest) {
      throw new RegistryError(
        `${what} of ${referenceName(r)}: its uncompressed tar hashes to ${(e as { actual?: string }).actual}, not to ${layer.diffId}, the diff_id its image config names; discarded it (the image is inconsistent)`,
        200, "GET", referenceName(r), false, { cause: e },
      );
    }
    throw e;
  }
}

/**
 * GETs blob `d` and hands its body (counted: more bytes than the descriptor says fail at once, fewer
 * at the end) to `consume`; starts again when the connection drops or stalls, as often as the
 * client allows. A digest mismatch is not retried: it becomes a RegistryError naming the blob.
 */
async function fetchWithRetries<T>(
  client: RegistryClient,
  r: Reference,
  d: Descriptor,
  onProgress: ((p: PullProgress) => void) | undefined,
  consume: (checked: Readable) => Promise<T>,
): Promise<T> {
  onProgress?.({ kind: "blob", digest: d.digest, size: d.size, status: "started" });
  let stalls = 0;
  for (let attempt = 0; ; attempt++) {
    const body = await openBlob(client, r, d.digest);
    const checked = pipeline(body, new CountingStream(d, r, onProgress), () => {});
    try {
      const out = await consume(checked);
      onProgress?.({ kind: "blob", digest: d.digest, size: d.size, status: "done" });
      return out;
    } catch (e) {
      body.destroy();
      if (client.options.signal?.aborted) throw client.options.signal.reason;
      if ((e as Error).name === "DigestMismatchError" && (e as { expected?: string }).expected === d.digest) {
        const actual = (e as { actual?: string }).actual;
        throw digestMismatch(d, r, actual ? `content with digest ${actual}` : "other content", e);
      }
      if ((e as Error).name === "DigestMismatchError") throw e;
      // The body can fail half way (connection dropped, idle timeout): that is worth a retry too.
      const err = e instanceof RegistryError ? e : isConnectionError(e) ? client.networkError(e, "GET", `/v2/${r.repository}/blobs/${d.digest}`, `blob ${d.digest} of ${referenceName(r)}`, r.registry) : undefined;
      if (err?.temporary && attempt < client.options.retries && (!isTimeout(e) || stalls++ < MAX_STALL_RETRIES)) {
        client.options.onNote?.(`${err.message}; fetching blob ${d.digest} again`);
        continue;
      }
      throw err ?? e;
    }
  }
}

/** GET of a blob; the body is the raw stream, not yet verified. */
export async function openBlob(client: RegistryClient, r: Reference, digest: Digest): Promise<Readable> {
  const res = await client.request(r.registry, {
    method: "GET",
    path: `/v2/${r.repository}/blobs/${digest}`,
    scopes: [pullScope(r)],
    ok: [200],
    what: `blob ${digest} of ${referenceName(r)}`,
  });
  return res.body as unknown as Readable;
}

/**
 * Passes bytes through, counting them: more than the descriptor's size fails at once, fewer at the
 * end. The digest itself is checked by the sink (BlobSink.writeBlob verifies `expected`), so the
 * bytes are hashed once.
 */
class CountingStream extends Transform {
  private seen = 0;
  private lastReport = 0;

  constructor(
    private readonly d: Descriptor,
    private readonly r: Reference,
    private readonly onProgress?: (p: PullProgress) => void,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.d.size) {
      cb(digestMismatch(this.d, this.r, `more than its ${this.d.size} bytes`));
      return;
    }
    if (this.onProgress && (this.seen - this.lastReport >= 1 << 20 || this.seen === this.d.size)) {
      this.lastReport = this.seen;
      this.onProgress({ kind: "bytes", digest: this.d.digest, size: this.d.size, done: this.seen });
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    // A short body is a dropped connection more often than a bad registry: worth a retry.
    cb(this.seen === this.d.size ? null : new RegistryError(`blob ${this.d.digest} from ${referenceName(this.r)} ended after ${this.seen} of ${this.d.size} bytes`, 200, "GET", referenceName(this.r), true));
  }
}

function digestMismatch(d: Descriptor, r: Reference, what: string, cause?: unknown): RegistryError {
  return new RegistryError(
    `blob ${d.digest} from ${referenceName(r)} does not match its digest: received ${what}; discarded it (the registry or a proxy corrupted it)`,
    200, "GET", referenceName(r), false, cause === undefined ? undefined : { cause },
  );
}

export function pullScope(r: Reference): string {
  return `repository:${r.repository}:pull`;
}

/** Runs fn over items with at most `limit` running; the first failure stops new starts and is thrown. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}
