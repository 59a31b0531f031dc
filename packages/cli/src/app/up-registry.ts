// The registry side of `mstage up`: --push, --cache-from, --cache-to and --insecure-registry, on one
// registry client so connections and tokens are shared by base pulls, cache traffic and pushes.
import { UserError } from "@mstage/core";
import {
  RegistryCache,
  RegistryClient,
  parseReference,
  pullCachedScan,
  pushCachedScan,
  pushImages,
  pushReferrers,
  type Artifact,
  type BuildEventHandler,
  imageSize,
  type BuiltOutput,
  type Digest,
  type RegistryClientOptions,
  type Store,
} from "@mstage/runtime";

export interface RegistryUpOptions {
  push?: boolean;
  /** --insecure-registry HOST (repeatable): plain HTTP allowed besides loopback. */
  insecure?: string[];
  /** --cache-from registry://HOST/REPO (repeatable). */
  cacheFrom?: string[];
  /** --cache-to registry://HOST/REPO (repeatable). */
  cacheTo?: string[];
}

/** One per `up` run; close() it at the end. */
export class UpRegistry {
  readonly client: RegistryClient;
  private readonly cacheFrom: RegistryCache[];
  private readonly cacheTo: RegistryCache[];

  constructor(
    readonly o: RegistryUpOptions,
    private readonly onEvent?: BuildEventHandler,
    signal?: AbortSignal,
  ) {
    // The run's signal ends every registry request and body read at once (SIGTERM, Ctrl-C).
    this.client = new RegistryClient({ insecure: o.insecure ?? [], onNote: (message) => onEvent?.({ type: "note", message }), signal });
    this.cacheFrom = (o.cacheFrom ?? []).map((r) => new RegistryCache(r, { client: this.client }));
    this.cacheTo = (o.cacheTo ?? []).map((r) => new RegistryCache(r, { client: this.client }));
  }

  /** What BaseProvider passes to pullImage/resolveDigest: this run's client. */
  get clientOptions(): RegistryClientOptions & { client: RegistryClient } {
    return { client: this.client };
  }

  /**
   * The plan's hasResult: the local store first, then each --cache-from repository, whose entry for
   * `key` is pulled into the store (so the build reuses it like a local result).
   */
  async hasResult(store: Store, key: string, local: (key: string) => Promise<boolean>): Promise<boolean> {
    if (await local(key)) return true;
    for (const cache of this.cacheFrom) {
      const entry = await cache.fetch(store, key);
      if (entry) {
        const { result } = entry;
        // The scan behind its SBOM comes along, so the SBOM is not made again from its layers.
        const scanned = await this.carryScan(cache.name, () => pullCachedScan(this.client, cache.repo, entry.manifest, store, result.layers.map((l) => l.diffId)));
        this.onEvent?.({ type: "note", message: `${result.stage ?? key}: layers${scanned ? " and package scan" : ""} from ${cache.name}` });
        return true;
      }
    }
    return false;
  }

  /**
   * --cache-to: every stage result of this run, under its key, with the package scan of its
   * layers where this run made one (an exported image's); call it after the attestations.
   */
  async exportResults(store: Store, keys: string[]): Promise<void> {
    if (!this.cacheTo.length) return;
    for (const key of new Set(keys)) {
      const result = await store.getResult(key);
      if (!result) continue;
      for (const cache of this.cacheTo) {
        const manifest = await cache.put(store, result);
        await this.carryScan(cache.name, () => pushCachedScan(this.client, cache.repo, manifest, store, result.layers.map((l) => l.diffId)));
      }
    }
  }

  /** A scan that cannot travel is made again where it is needed: worth a note, not a failure. */
  private async carryScan(cache: string, move: () => Promise<boolean>): Promise<boolean> {
    try {
      return await move();
    } catch (e) {
      this.onEvent?.({ type: "note", message: `${cache}: the package scan did not travel with the cache (${(e as Error).message}); it is made again where needed` });
      return false;
    }
  }

  /** --push: each exported stage to each of its tags. Returns the output lines for the summary. */
  async push(store: Store, images: { stage: string; tags: readonly string[]; image: BuiltOutput; referrers?: { subject: Digest; artifacts: Artifact[] }[] }[]) {
    const targets = images.filter((i) => i.tags.length > 0);
    if (targets.length === 0) {
      throw new UserError(`--push: no exported stage has tags; add tags: ["registry.example.com/${images[0]?.stage ?? "app"}:1.0"] to the stage`);
    }
    const pushed = await pushImages(targets.map((t) => ({ tags: [...t.tags], image: t.image })), {
      source: store,
      client: this.client,
      onTransfer: (p) => this.onEvent?.({ type: "transfer", direction: "push", ref: p.ref, done: p.done, total: p.total, bytesPerSecond: p.bytesPerSecond }),
    });
    // Attestations go to each repository the image went to, once per repository.
    const repos = new Set<string>();
    // Of a multi-platform image, each platform's image has its own.
    for (const t of targets) {
      for (const tag of t.tags) {
        const ref = parseReference(tag);
        for (const { subject, artifacts } of t.referrers ?? []) {
          const repo = `${ref.registry}/${ref.repository}@${subject}`;
          if (!artifacts.length || repos.has(repo)) continue;
          repos.add(repo);
          const r = await pushReferrers(this.client, ref, subject, artifacts, store);
          this.onEvent?.({ type: "note", message: `${tag}: ${artifacts.length} attestation(s) attached${t.referrers!.length > 1 ? ` to ${subject.slice(0, 19)}…` : ""} (${r.via === "api" ? "referrers API" : `tag ${ref.repository}:sha256-…`})` });
        }
      }
    }
    return pushed.map((p, i) => {
      const img = targets.flatMap((t) => t.tags.map(() => t.image))[i]!;
      const size = imageSize(img);
      return { dest: "push:registry", ref: p.ref, digest: p.digest, size };
    });
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
