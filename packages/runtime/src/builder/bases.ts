// Where a stage's filesystem starts when it is not another stage: scratch, a tarball (made a layer
// of the store by the builder, its file as it is), an OCI layout on disk, a Debian rootfs made by
// mmdebstrap, or a registry image. `resolve` gives core's planner each base's identity (what goes
// into the stage key); `prepare` gives the builder its layers and config.
import { createReadStream } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  HostileLayerError,
  StageError,
  UserError,
  debianIdentity,
  debianLockKey,
  formatPlatform,
  hostPlatform,
  ociBaseEntry,
  ociLayoutBlob,
  parsePlatform,
  platformMatches,
  selectPlatform,
  sha256Hex,
  writeFileAtomicSync,
  type Base,
  type BaseIdentity,
  type DebianBase,
  type ImageBase,
  type LockFile,
  type OciBase,
  type Stage,
  type TarballBase,
} from "@mstage/core";
import { createdTimestamp, emptyImageConfig } from "../oci/config.ts";
import { digestHex, parseDigest, sha256Digest, type Digest } from "../oci/digest.ts";
import { isImageManifestType, layerCompressionOf, isIndexType, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from "../oci/types.ts";
import { pullImage, resolveDigest } from "../registry/pull.ts";
import type { RegistryClientOptions } from "../registry/client.ts";
import { buildDebianRootfs } from "./debian.ts";
import type { BuildEventHandler } from "./events.ts";
import { CorruptLayerError, commitLayerToStore, type LayerRef, type StageResult, type Store } from "./deps.ts";

export interface PreparedBase {
  /** The base's layers, bottom first. */
  layers: LayerRef[];
  /** The base image's whole config (rootfs.diff_ids match `layers`). */
  config: ImageConfig;
  /** For the base.* annotations of images whose chain starts from a registry or OCI image. */
  base?: { name: string; digest: Digest };
  /**
   * The base image's own blobs in the store (a pulled image's manifest and config, an oci() base's
   * config): results built on it list them, so gc keeps them while those results are kept.
   */
  blobs?: Digest[];
}

export interface BaseProviderOptions {
  store: Store;
  projectDir: string;
  /** images.lock as read; updated in place when a tag or a debian() base is (re)resolved. */
  lock: LockFile;
  /** Re-resolve image tags and debian package versions instead of using images.lock. */
  refresh?: boolean;
  /** Never contact a registry: tags must be in images.lock. */
  offline?: boolean;
  sourceDateEpoch?: number;
  registry?: RegistryClientOptions;
  onEvent?: BuildEventHandler;
  signal?: AbortSignal;
}

export class BaseProvider implements BaseIdentity {
  /** True once images.lock needs writing. */
  lockChanged = false;
  private readonly identities = new Map<string, Promise<string>>();
  private readonly making = new Map<string, Promise<string>>();

  constructor(private readonly o: BaseProviderOptions) {}

  /** When images made here say they were created: SOURCE_DATE_EPOCH, like their layers' file times. */
  private created(): string {
    return createdTimestamp(this.o.sourceDateEpoch ?? 0);
  }

  /**
   * The base's identity for the stage key, the same one core's LockedBaseIdentity reads from
   * images.lock, after resolving what the lock does not pin (which updates the lock).
   */
  resolveBase(base: Base, stage: Stage): Promise<string> {
    return memoised(this.identities, baseKey(base, stage), () => this.computeIdentity(base, stage));
  }

  /**
   * The base's layers and config. `known` is what a stored result of a stage on this base records
   * as the base's layers: a cached stage on a debian() base then needs no rootfs made. `blobs` is
   * what that result lists as its `blobs`: enough to remake a pulled base's record without the
   * registry when gc has dropped that record.
   */
  async prepare(base: Base, stage: Stage, known?: readonly LayerRef[], blobs?: readonly Digest[]): Promise<PreparedBase> {
    const platform = stagePlatform(stage);
    const empty = { layers: [], config: emptyImageConfig(platform) };
    switch (base.kind) {
      case "scratch":
        return empty;
      case "tarball":
        // The builder imports the tar when it builds on it; a stored result names its layer. A
        // result stored when a tarball and its stage's changes were one layer has none.
        return known?.length ? tarballBase(base, known[0]!, platform, this.created()) : empty;
      case "stage":
        throw new Error("stage bases are the builder's business");
      case "debian": {
        const id = await this.resolveBase(base, stage);
        const made = await this.o.store.getResult(id);
        if (made) return { layers: made.layers, config: dated(made.config, this.created()) };
        if (known?.length === 1) return { layers: [...known], config: debianConfig(base, known[0]!, platform, this.created()) };
        if (await this.makeDebian(base, stage)) {
          throw new StageError(stage.name, `debian ${debianLockKey(base)}: the mirror now installs other package versions than images.lock pinned; images.lock is updated, run mstage up again`, "from", stage.definedAt);
        }
        const r = await this.o.store.getResult(id);
        if (!r) throw new Error(`debian base ${debianLockKey(base)} vanished from the store during the build`);
        return { layers: r.layers, config: dated(r.config, this.created()) };
      }
      case "oci":
        return checkBasePlatform(await this.prepareOci(base, stage), stage, `oci(${JSON.stringify(base.layout)})`);
      case "image":
        return checkBasePlatform(await this.prepareImage(base, stage, blobs), stage, base.ref);
    }
  }

  private async computeIdentity(base: Base, stage: Stage): Promise<string> {
    switch (base.kind) {
      case "debian": {
        // Pinned: the identity is the lock's; the rootfs is made only for a stage that runs on it.
        const pinned = this.pinnedDebian(base);
        return pinned ? debianIdentity(base, pinned) : this.buildDebian(base, stage);
      }
      case "oci":
        return this.ociEntry(base, stage).entry.digest;
      case "image":
        return this.resolveImage(base, stage);
      default:
        return base.kind;
    }
  }

  // ---- tarball() ----

  /**
   * The layer a local tarball() with this source digest (its content, as the plan hashed it) was
   * imported as, while the store still holds that layer's dir and blob: a rebuild on an unchanged
   * tar then reads nothing.
   */
  async importedTarball(digest: string): Promise<LayerRef | undefined> {
    const rec = await readFile(this.tarballRecord(digest), "utf8").then((t) => JSON.parse(t) as LayerRef, () => undefined);
    return rec && this.o.store.hasLayerDir(rec.diffId) && this.o.store.layerBlob(rec.diffId) ? { diffId: rec.diffId, size: rec.size } : undefined;
  }

  rememberTarball(digest: string, layer: LayerRef): void {
    writeFileAtomicSync(this.tarballRecord(digest), JSON.stringify(layer) + "\n");
  }

  private tarballRecord(digest: string): string {
    return join(this.o.store.cacheDir("tarball-layers"), `${sha256Hex(digest)}.json`);
  }

  // ---- debian() ----

  /**
   * Makes a debian() base's rootfs unless the store has it: call it for the bases of stages that
   * must run. Returns true when the mirror now installs other versions than images.lock pinned:
   * the lock is updated, and keys computed from the old pin are stale (plan again).
   */
  async makeDebian(base: DebianBase, stage: Stage): Promise<boolean> {
    if (!this.pinnedDebian(base)) {
      // Unpinned (or --refresh): resolving it made it.
      await this.resolveBase(base, stage);
      return false;
    }
    const k = baseKey(base, stage);
    const p = memoised(this.making, k, () => this.buildDebian(base, stage));
    const [before, after] = await Promise.all([this.resolveBase(base, stage), p]);
    if (before === after) return false;
    this.identities.set(k, Promise.resolve(after));
    return true;
  }

  /** The package versions images.lock pins for a debian() base, unless --refresh ignores them. */
  private pinnedDebian(base: DebianBase): Record<string, string> | undefined {
    return this.o.refresh ? undefined : this.o.lock.debian[debianLockKey(base)]?.packages;
  }

  /**
   * A debian base is identified by its arguments and the package versions it resolved to; both go
   * into the identity. The rootfs is made once per identity and kept in the store as one layer.
   */
  private async buildDebian(base: DebianBase, stage: Stage): Promise<string> {
    const lockKey = debianLockKey(base);
    const pinned = this.pinnedDebian(base);
    if (pinned) {
      const id = debianIdentity(base, pinned);
      if (await this.o.store.hasResult(id)) return id;
    }
    // Not pinned by this project yet: reuse the newest base made with these arguments by any
    // project on this store, as a pull would reuse a cached tag, rather than run mmdebstrap again.
    const madePath = join(this.o.store.cacheDir("debian-bases"), `${sha256Hex(lockKey)}.json`);
    if (!pinned && !this.o.refresh) {
      const made = await readFile(madePath, "utf8").then((t) => JSON.parse(t) as { packages: Record<string, string> }, () => undefined);
      if (made && (await this.o.store.hasResult(debianIdentity(base, made.packages)))) {
        this.o.lock.debian[lockKey] = { packages: made.packages };
        this.lockChanged = true;
        return debianIdentity(base, made.packages);
      }
    }
    const emit = this.o.onEvent ?? (() => {});
    emit({ type: "stage-phase", stage: stage.name, phase: `debian ${lockKey}` });
    const dir = this.o.store.tmpDir("debian");
    try {
      const { rootfs, versions } = await buildDebianRootfs(base, dir, {
        sourceDateEpoch: this.o.sourceDateEpoch ?? 0,
        signal: this.o.signal,
        onLine: (line) => emit({ type: "log", stage: stage.name, line, stream: "stderr" }),
        onPhase: (phase, progress) => emit({ type: "stage-phase", stage: stage.name, phase: `debian: ${phase}`, ...(progress ? { progress } : {}) }),
      });
      if (pinned && !sameVersions(pinned, versions)) {
        emit({ type: "note", stage: stage.name, message: `debian ${lockKey}: the mirror now has other package versions than images.lock; images.lock updated` });
      }
      const id = debianIdentity(base, versions);
      if (!(await this.o.store.hasResult(id))) {
        emit({ type: "stage-phase", stage: stage.name, phase: "debian commit" });
        const layer = await commitLayerToStore(this.o.store, rootfs, { sourceDateEpoch: this.o.sourceDateEpoch ?? 0 });
        // A fresh rootfs has no whiteouts: it already is the overlay lower dir of its own layer, so
        // move it into place instead of extracting the tar we just wrote (saves a pass over ~600 MB).
        // Its files made durable first: a dir under the layer's name is built on without a look inside.
        if (!this.o.store.hasLayerDir(layer.diffId)) {
          await this.o.store.syncFilesystem();
          this.o.store.placeLayerDir(layer.diffId, rootfs);
        }
        const config = debianConfig(base, layer, stagePlatform(stage), this.created());
        const record: StageResult = { key: id, layers: [layer], config, history: config.history ?? [], created: new Date(0).toISOString(), stage: `debian ${lockKey}` };
        await this.o.store.putResult(id, record);
      }
      writeFileAtomicSync(madePath, JSON.stringify({ packages: versions }) + "\n");
      if (!pinned || !sameVersions(pinned, versions)) {
        this.o.lock.debian[lockKey] = { packages: versions };
        this.lockChanged = true;
      }
      return id;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  // ---- oci() ----

  /** core's one reading of an oci() base's index, its errors tied to the stage. */
  private ociEntry(base: OciBase, stage: Stage): ReturnType<typeof ociBaseEntry> {
    try {
      return ociBaseEntry(base, this.o.projectDir, stage.spec.platform);
    } catch (e) {
      if (e instanceof UserError && !(e instanceof StageError)) throw new StageError(stage.name, e.message, "from", stage.definedAt, { cause: e });
      throw e;
    }
  }

  private async readOci(base: OciBase, stage: Stage): Promise<{ layout: string; manifestDigest: Digest; manifest: ImageManifest }> {
    const fail = (msg: string) => new StageError(stage.name, `oci(${JSON.stringify(base.layout)}): ${msg}`, "from", stage.definedAt);
    const { dir: layout, entry } = this.ociEntry(base, stage);
    let desc = entry;
    let bytes = await readLayoutBlob(layout, layoutDigest(desc.digest, "index.json names a manifest", fail), fail);
    if (isIndexType(desc.mediaType)) {
      const nested = parseLayoutJson<ImageIndex>(bytes, `index ${desc.digest}`, fail);
      desc = this.choose((nested.manifests ?? []).filter((m) => !isIndexType(m.mediaType)), stage, `oci(${JSON.stringify(base.layout)}${base.ref ? `, ${JSON.stringify(base.ref)}` : ""})`);
      bytes = await readLayoutBlob(layout, layoutDigest(desc.digest, `index ${entry.digest} names a manifest`, fail), fail);
    }
    if (sha256Digest(bytes) !== desc.digest) throw fail(`manifest ${desc.digest} does not match its content`);
    const manifest = parseLayoutJson<ImageManifest>(bytes, `manifest ${desc.digest}`, fail);
    if (!isImageManifestType(manifest.mediaType ?? desc.mediaType)) throw fail(`${desc.digest} is not an image manifest`);
    // Every digest the manifest names becomes a path in the layout: none is used before it parses.
    if (!manifest.config || !Array.isArray(manifest.layers)) throw fail(`manifest ${desc.digest} has no config and layers`);
    manifest.config.digest = layoutDigest(manifest.config.digest, `manifest ${desc.digest} names its config`, fail);
    for (const [i, l] of manifest.layers.entries()) l.digest = layoutDigest(l.digest, `manifest ${desc.digest} names layer ${i}`, fail);
    return { layout, manifestDigest: desc.digest as Digest, manifest };
  }

  /** The index entry for the stage's platform; none is a StageError naming the platforms there are. */
  private choose<T extends { platform?: Platform }>(entries: T[], stage: Stage, what: string): T {
    try {
      return selectPlatform(entries, stagePlatform(stage), what);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      throw new StageError(stage.name, `${e.message.replace(/ \(choose one with the platform option\)$/, "")}: build this stage for one of those (platform/platforms), or use a base that has ${formatPlatform(stagePlatform(stage))}`, "from", stage.definedAt);
    }
  }

  private async prepareOci(base: OciBase, stage: Stage): Promise<PreparedBase> {
    const { layout, manifestDigest, manifest } = await this.readOci(base, stage);
    const fail = (msg: string) => new StageError(stage.name, `oci(${JSON.stringify(base.layout)}): ${msg}`, "from", stage.definedAt);
    const blob = (d: Digest) => join(layout, "blobs", "sha256", digestHex(d));
    const configBytes = await readLayoutBlob(layout, manifest.config.digest, fail);
    await this.o.store.writeBlob(configBytes, manifest.config.digest, { what: `config ${manifest.config.digest} in ${blob(manifest.config.digest)}` });
    const config = parseLayoutJson<ImageConfig>(configBytes, `config ${manifest.config.digest}`, fail);
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (!Array.isArray(diffIds) || diffIds.length !== manifest.layers.length) {
      throw fail(`the config lists ${Array.isArray(diffIds) ? diffIds.length : "no"} layers, the manifest ${manifest.layers.length}`);
    }
    const layers: LayerRef[] = [];
    for (const [i, l] of manifest.layers.entries()) {
      const diffId = layoutDigest(diffIds[i], `config ${manifest.config.digest} names diff-id ${i}`, fail);
      await this.o.store.writeBlob(createReadStream(blob(l.digest)), l.digest);
      const format = layerCompressionOf(l.mediaType);
      if (format) await this.o.store.recordCompressed(diffId, { digest: l.digest, size: l.size }, format);
      layers.push({ diffId, size: l.size });
    }
    return { layers, config, base: { name: base.ref ?? base.layout, digest: manifestDigest }, blobs: [manifest.config.digest] };
  }

  // ---- image() ----

  private async resolveImage(base: ImageBase, stage: Stage): Promise<string> {
    const pinned = this.o.lock.images[base.ref];
    if (pinned && !this.o.refresh) return pinned;
    if (this.o.offline) {
      throw new StageError(stage.name, `image ${base.ref} is not pinned in images.lock and --offline forbids resolving it`, "from", stage.definedAt);
    }
    const digest = await resolveDigest(base.ref, this.o.registry ?? {});
    if (pinned !== digest) {
      this.o.lock.images[base.ref] = digest;
      this.lockChanged = true;
    }
    return digest;
  }

  private async prepareImage(base: ImageBase, stage: Stage, stored?: readonly Digest[]): Promise<PreparedBase> {
    const digest = await this.resolveBase(base, stage);
    const platform = formatPlatform(base.platform ? parsePlatform(base.platform) : stagePlatform(stage));
    // A pulled base is remembered under its pinned digest: a cached or config-only stage on it
    // needs neither the registry nor its layers.
    const key = sha256Hex(`image-base\n${base.ref}\n${digest}\n${platform}`);
    const known = await this.o.store.getResult(key);
    if (known) {
      const manifestDigest = parseDigest(known.history[0]?.comment ?? digest);
      return { layers: known.layers, config: known.config, base: { name: base.ref, digest: manifestDigest }, blobs: known.blobs };
    }
    const name = base.ref.replace(/@sha256:[a-f0-9]{64}$/, "");
    // A multi-platform tag pins each platform's manifest too: that one is fetched directly.
    const pinnedManifest = this.o.refresh ? undefined : this.o.lock.platforms[base.ref]?.[platform];
    const ref = `${name}@${pinnedManifest ?? digest}`;
    const fromBlobs = stored && (await this.imageFromBlobs(stored));
    if (fromBlobs) return this.recordImage(key, base, ref, fromBlobs);
    const emit = this.o.onEvent ?? (() => {});
    emit({ type: "stage-phase", stage: stage.name, phase: `pull ${base.ref}` });
    const pulled = await pullImage(ref, {
      ...(this.o.registry ?? {}),
      store: this.o.store,
      extractTo: this.o.store,
      platform: platform,
      onTransfer: (p) => emit({ type: "transfer", stage: stage.name, direction: "pull", ref: base.ref, done: p.done, total: p.total, bytesPerSecond: p.bytesPerSecond }),
    }).catch((e) => {
      // A layer extracted while it downloads that is no tar, or a hostile one: the stage's base is the source.
      if (e instanceof CorruptLayerError || e instanceof HostileLayerError) throw new StageError(stage.name, `base ${base.ref}: ${e.message}`, "from", stage.definedAt, { cause: e });
      throw e;
    });
    const layers: LayerRef[] = [];
    for (const l of pulled.layers) {
      const format = layerCompressionOf(l.mediaType);
      if (format) await this.o.store.recordCompressed(l.diffId, { digest: l.digest, size: l.size }, format);
      layers.push({ diffId: l.diffId, size: l.size });
    }
    const config = pulled.config as unknown as ImageConfig;
    if (pulled.resolvedDigest !== pulled.manifestDigest && this.o.lock.platforms[base.ref]?.[platform] !== pulled.manifestDigest) {
      (this.o.lock.platforms[base.ref] ??= {})[platform] = pulled.manifestDigest;
      this.lockChanged = true;
    }
    return this.recordImage(key, base, ref, { layers, config, manifestDigest: pulled.manifestDigest, configDigest: pulled.configDigest });
  }

  private async recordImage(key: string, base: ImageBase, ref: string, image: PulledImage): Promise<PreparedBase> {
    const blobs = [image.manifestDigest, image.configDigest];
    await this.o.store.putResult(key, {
      key,
      layers: image.layers,
      config: image.config,
      // The platform manifest's digest (for the base.digest annotation) rides in the one history entry.
      history: [{ created_by: `pull ${ref}`, comment: image.manifestDigest }],
      created: new Date(0).toISOString(),
      stage: `image ${base.ref}`,
      blobs,
    });
    return { layers: image.layers, config: image.config, base: { name: base.ref, digest: image.manifestDigest }, blobs };
  }

  /** A pulled image as an earlier pull left it in the store: its manifest among `blobs`, its config and layers present. */
  private async imageFromBlobs(blobs: readonly Digest[]): Promise<PulledImage | undefined> {
    const store = this.o.store;
    const json = async (d: Digest): Promise<unknown> => {
      if (!store.hasBlob(d)) return undefined;
      try {
        return JSON.parse((await store.readBlob(d)).toString("utf8"));
      } catch {
        return undefined;
      }
    };
    for (const manifestDigest of blobs) {
      const manifest = (await json(manifestDigest)) as ImageManifest | undefined;
      if (!manifest?.config || !Array.isArray(manifest.layers) || !blobs.includes(manifest.config.digest)) continue;
      const config = (await json(manifest.config.digest)) as ImageConfig | undefined;
      const diffIds = config?.rootfs?.diff_ids ?? [];
      if (!config || diffIds.length !== manifest.layers.length) continue;
      const layers = manifest.layers.map((l, i) => ({ diffId: parseDigest(diffIds[i]!), size: l.size }));
      if (!layers.every((l) => store.hasLayer(l.diffId))) continue;
      return { layers, config, manifestDigest, configDigest: manifest.config.digest };
    }
    return undefined;
  }
}

interface PulledImage {
  layers: LayerRef[];
  config: ImageConfig;
  manifestDigest: Digest;
  configDigest: Digest;
}

/** A debian() base's image config: nothing but its one layer, so `prepare` can rebuild it from that. */
/** A tarball() base: its one layer, the tar file as it is. */
export function tarballBase(base: TarballBase, layer: LayerRef, platform: Platform, created: string): PreparedBase {
  const config = emptyImageConfig(platform);
  config.rootfs.diff_ids = [layer.diffId];
  config.history = [{ created_by: `mstage ${tarballName(base)}`, comment: "mstage" }];
  return { layers: [layer], config: dated(config, created) };
}

/** `tarball(local("./rootfs.tar"))`, `tarball(build.path("/out/rootfs.tar"))`: the base as images.ts writes it. */
export function tarballName(base: TarballBase): string {
  const s = base.source;
  return s.kind === "local" ? `tarball(local(${JSON.stringify(s.path)}))` : `tarball(${s.stage.name}.path(${JSON.stringify(s.path)}))`;
}

function debianConfig(base: DebianBase, layer: LayerRef, platform: Platform, created: string): ImageConfig {
  const config = emptyImageConfig(platform);
  config.rootfs.diff_ids = [layer.diffId];
  config.history = [{ created_by: `mstage debian ${debianLockKey(base)}`, comment: "mstage" }];
  return dated(config, created);
}

/**
 * The config with SOURCE_DATE_EPOCH's time on itself and on every history entry that has none, as
 * the stages' own entries have: an undated entry reads as year 1 ("292 years ago" in podman history).
 * Also applied to debian() bases that a store made before their entries were dated.
 */
function dated(config: ImageConfig, created: string): ImageConfig {
  return { ...config, created: config.created ?? created, history: (config.history ?? []).map((h) => ({ ...h, created: h.created ?? created })) };
}

/** One promise per key while it is pending or fulfilled; a rejected one is forgotten, so a retry tries again. */
export function memoised<T>(map: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> {
  let p = map.get(key);
  if (!p) {
    p = make();
    map.set(key, p);
    p.catch(() => map.delete(key));
  }
  return p;
}

function sameVersions(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

function baseKey(base: Base, stage: Stage): string {
  switch (base.kind) {
    case "debian":
      return `debian:${debianLockKey(base)}`;
    case "oci":
      return `oci:${base.layout}:${base.ref ?? ""}:${formatPlatform(stagePlatform(stage))}`;
    case "image":
      return `image:${base.ref}:${base.platform ?? ""}`;
    default:
      return base.kind;
  }
}


/** A digest read from an OCI layout, parsed before any path is built from it. */
function layoutDigest(d: unknown, where: string, fail: (msg: string) => Error): Digest {
  try {
    return parseDigest(String(d));
  } catch {
    throw fail(`${where} as ${JSON.stringify(d)}, which is not a sha256 digest (sha256:<64 hex digits>)`);
  }
}

async function readLayoutBlob(layout: string, d: Digest, fail: (msg: string) => Error): Promise<Buffer> {
  const file = join(layout, "blobs", "sha256", digestHex(d));
  try {
    return await readFile(file);
  } catch (e) {
    throw fail(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "the layout lacks this blob" : (e as Error).message}`);
  }
}

function parseLayoutJson<T>(bytes: Buffer, what: string, fail: (msg: string) => Error): T {
  try {
    const doc = JSON.parse(bytes.toString("utf8")) as T;
    if (doc === null || typeof doc !== "object") throw new Error("not an object");
    return doc;
  } catch {
    throw fail(`${what} is not a JSON document`);
  }
}
/**
 * An image's config says what it runs on; a stage built for another platform on it would write an
 * image whose config lies (and run the wrong binaries), so it is refused.
 */
export function checkBasePlatform(base: PreparedBase, stage: Stage, what: string): PreparedBase {
  const { os, architecture, variant } = base.config;
  if (!os || !architecture) return base;
  const want = stagePlatform(stage);
  if (platformMatches(want, { os, architecture, ...(variant ? { variant } : {}) })) return base;
  const have = formatPlatform(parsePlatform(`${os}/${architecture}${variant ? `/${variant}` : ""}`));
  throw new StageError(stage.name, `${what} is an image for ${have}, not ${formatPlatform(want)}: build this stage with platform: "${have}", or use a base that has ${formatPlatform(want)}`, "from", stage.definedAt);
}

/** The platform a stage is built for: the graph's instances always name it; a bare stage is the host's. */
export function stagePlatform(stage: Stage): Platform {
  const p = stage.spec.platform;
  return p && p !== "host" ? parsePlatform(p) : hostPlatform();
}

