// A shared build cache in any OCI registry (BuildKit's `--cache-to/--cache-from type=registry`):
// each stage result is an ordinary image tagged with its stage key, so a machine with an empty
// store can pull the layers instead of running the steps. The result record rides along as a
// manifest annotation; the image itself (config + gzip layers) is valid, so registries keep it.
import { RegistryError, UserError } from "@mstage/core";
import { canonicalBlob } from "../oci/canonical.ts";
import { isDigest, type Digest } from "../oci/digest.ts";
import { MediaType, layerCompressionOf, type Descriptor, type ImageManifest } from "../oci/types.ts";
import { compressLayer } from "../layer/compress.ts";
import type { Store } from "../store/store.ts";
import type { StageResult } from "../store/results.ts";
import { RegistryClient, type RegistryClientOptions } from "./client.ts";
import { fetchManifest, fetchBlobToStore, type PullProgress } from "./pull.ts";
import { parseManifest } from "./manifest.ts";
import { pushImage } from "./push.ts";
import { formatReference, parseReference, referenceName, type Reference } from "./reference.ts";

const RESULT_ANNOTATION = "dev.mstage.stage-result";
const KEY_ANNOTATION = "dev.mstage.stage-key";

/** Parses `registry://HOST/REPO` (the scheme is optional) into the cache's repository. */
export function parseCacheRef(s: string): Reference {
  const bare = s.replace(/^registry:\/\//, "");
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(bare)) throw new UserError(`cache ${JSON.stringify(s)}: write registry://HOST/REPO, e.g. registry://localhost:5000/cache/myapp`);
  const r = parseReference(bare);
  if (r.digest || (r.tag !== undefined && r.tag !== "latest") || bare.endsWith(":latest")) {
    throw new UserError(`cache ${JSON.stringify(s)}: name a repository without tag or digest; mstage tags it with stage keys`);
  }
  return { registry: r.registry, repository: r.repository };
}

export interface RegistryCacheOptions extends RegistryClientOptions {
  client?: RegistryClient;
  onProgress?: (p: PullProgress) => void;
}

/** One cache repository. Share a client across caches and pulls when you can. */
export class RegistryCache {
  readonly repo: Reference;
  private readonly client: RegistryClient;
  private readonly ownClient: boolean;

  constructor(
    ref: string,
    private readonly opts: RegistryCacheOptions = {},
  ) {
    this.repo = parseCacheRef(ref);
    this.ownClient = !opts.client;
    this.client = opts.client ?? new RegistryClient(opts);
  }

  async close(): Promise<void> {
    if (this.ownClient) await this.client.close();
  }

  /** `registry://host/repo`, for messages. */
  get name(): string {
    return `registry://${referenceName(this.repo)}`;
  }

  private tagged(key: string): Reference {
    return { ...this.repo, tag: keyTag(key) };
  }

  /** Whether the cache holds a result for `key` (one HEAD request). */
  async has(key: string): Promise<boolean> {
    const r = this.tagged(key);
    try {
      const res = await this.client.request(r.registry, {
        method: "HEAD",
        path: `/v2/${r.repository}/manifests/${r.tag}`,
        scopes: [`repository:${r.repository}:pull`],
        headers: { accept: MediaType.ociManifest },
        ok: [200],
        what: `cache entry ${formatReference(r)}`,
      });
      await res.body.dump();
      return true;
    } catch (e) {
      if (e instanceof RegistryError && e.status === 404) return false;
      throw e;
    }
  }

  /**
   * Pulls the result for `key` into `store`: its layers (verified, recorded as the gzip of their
   * diff-ids) and the result record, with the digest of the entry's manifest. Returns null when
   * the cache has no such entry.
   */
  async fetch(store: Store, key: string): Promise<{ result: StageResult; manifest: Digest } | null> {
    const r = this.tagged(key);
    let manifestBytes: Uint8Array;
    let mediaType: string;
    let digest: Digest;
    try {
      ({ bytes: manifestBytes, mediaType, digest } = await fetchManifest(this.client, r, r.tag!));
    } catch (e) {
      if (e instanceof RegistryError && e.status === 404) return null;
      throw e;
    }
    const where = `cache entry ${formatReference(r)}`;
    const parsed = parseManifest(manifestBytes, mediaType, where);
    if (parsed.kind !== "image") throw new RegistryError(`${where} is an index, not a cached stage`, 200, "GET", where, false);
    const result = readResult(parsed.manifest, key, where);
    await Promise.all(
      parsed.manifest.layers.map(async (desc, i) => {
        const diffId = result.layers[i]!.diffId;
        if (!store.hasLayer(diffId)) await fetchBlobToStore(this.client, r, desc, store, this.opts.onProgress);
        const format = layerCompressionOf(desc.mediaType) ?? "gzip";
        if (!store.compressedOf(diffId, format) && store.hasBlob(desc.digest)) await store.recordCompressed(diffId, { digest: desc.digest, size: desc.size }, format);
      }),
    );
    await store.putResult(key, result);
    return { result, manifest: digest };
  }

  /** Pushes a stage result (compressing its layers if needed) under its key; returns its manifest's descriptor. */
  async put(store: Store, result: StageResult): Promise<Descriptor> {
    const r = this.tagged(result.key);
    const layers = [];
    for (const l of result.layers) {
      const gz = await compressLayer(store, l.diffId);
      layers.push({ mediaType: MediaType.ociLayerGzip, digest: gz.digest, size: gz.size });
    }
    const config = canonicalBlob({ ...result.config, rootfs: { type: "layers", diff_ids: result.layers.map((l) => l.diffId) }, history: result.history });
    await store.writeBlob(config.bytes, config.digest);
    // The project path stays on this machine; the rest is what another store needs.
    const { project: _project, blobs: _blobs, ...shared } = result;
    const manifest = canonicalBlob({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.size },
      layers,
      annotations: { [KEY_ANNOTATION]: result.key, [RESULT_ANNOTATION]: JSON.stringify(shared) },
    });
    const pushed = await pushImage({
      ref: r,
      manifest: { bytes: manifest.bytes, mediaType: MediaType.ociManifest },
      config: { digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ digest: l.digest, size: l.size })),
      source: store,
      client: this.client,
    });
    return { mediaType: MediaType.ociManifest, digest: pushed.digest, size: manifest.size };
  }
}

function keyTag(key: string): string {
  const m = /^(?:sha256:)?([a-f0-9]{64})$/.exec(key);
  if (!m) throw new Error(`invalid stage key ${JSON.stringify(key)}`);
  return m[1]!;
}

function readResult(manifest: ImageManifest, key: string, where: string): StageResult {
  const raw = manifest.annotations?.[RESULT_ANNOTATION];
  let result: StageResult;
  try {
    result = JSON.parse(raw ?? "") as StageResult;
  } catch {
    throw new RegistryError(`${where} carries no mstage stage result (annotation ${RESULT_ANNOTATION}); is this repository used for something else?`, 200, "GET", where, false);
  }
  if (result.key !== key || !Array.isArray(result.layers) || result.layers.length !== manifest.layers.length) {
    throw new RegistryError(`${where} does not match stage key ${key}; the cache repository holds a damaged entry`, 200, "GET", where, false);
  }
  // Its diff-ids and blobs become store paths: each must parse as a digest first.
  for (const d of [...result.layers.map((l) => l?.diffId), ...(result.blobs ?? [])]) {
    if (!isDigest(d)) throw new RegistryError(`${where} names ${JSON.stringify(d)}, which is not a sha256 digest; the cache repository holds a damaged entry`, 200, "GET", where, false);
  }
  return result;
}
