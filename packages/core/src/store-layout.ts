// The store's layout, defined once (DESIGN §3): where each kind of entry lives under a store root,
// and the small rules that read it without the runtime. `plan` asks this module whether a stage's
// result is in the store; the runtime's Store builds every path from it.
//
//   FORMAT                 "mstage-store 1"
//   blobs/sha256/<hex>     blobs by digest (uncompressed layer tars, gzip layers, configs, manifests)
//   layers/<hex>/          layers extracted by diff-id, in overlay-lower format (read-only lower dirs)
//   results/<hex>.json     stage key → the stage's result record
//   gzip/<hex>             diff-id → "<digest of its gzip blob> <size>"
//   zstd/<hex>             diff-id → "<digest of its zstd blob> <size>" (same format)
//   caches/<id>/           persistent `caches` dirs of `run` steps
//   stat-cache/<hex>/      the per-project stat cache, a file per local source (file → content digest)
//   attestations/scan-<hex>.json   an image's package scan (for its SBOM), by its layer chain
//   attestations/layer-<hex>.json  one layer's file checksums and Go build info, by its diff-id
//   tmp/                   temp files and work dirs; same filesystem, so finished entries rename in
//   locks/                 the store lock's files (shared holders and gc's exclusive one)
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "./canonical.ts";

export const STORE_FORMAT = "mstage-store 1\n";

/** The store's top-level directories, created when a store is opened. */
export const STORE_DIRS = ["blobs/sha256", "layers", "results", "gzip", "zstd", "caches", "stat-cache", "tmp", "locks"] as const;

const DIGEST = /^sha256:([a-f0-9]{64})$/;

/** The hex of a `sha256:<hex>` digest, or null when it is not one. */
function hexOf(digest: string): string | null {
  return DIGEST.exec(digest)?.[1] ?? null;
}

function checkedHex(digest: string, what: string): string {
  const hex = hexOf(digest);
  if (hex === null) throw new Error(`invalid ${what} ${JSON.stringify(digest)}: want sha256:<64 hex digits>`);
  return hex;
}

/** The file name stem of a stage key's result (its hex); accepts `sha256:<hex>` or bare hex. */
export function resultHex(key: string): string {
  if (/^[a-f0-9]{64}$/.test(key)) return key;
  return checkedHex(key, "stage key");
}

/** The store's top-level entries, each a field of StoreLayout (see the drawing above). */
const TOP_LEVEL = {
  format: "FORMAT",
  blobsDir: "blobs/sha256",
  layersDir: "layers",
  resultsDir: "results",
  gzipDir: "gzip",
  zstdDir: "zstd",
  cachesDir: "caches",
  statCacheDir: "stat-cache",
  tmpDir: "tmp",
  locksDir: "locks",
  attestationsDir: "attestations",
} as const;

type TopLevelPaths = { readonly [K in keyof typeof TOP_LEVEL]: string };

// The class below gets one read-only field per TOP_LEVEL entry, set by its constructor.
export interface StoreLayout extends TopLevelPaths {}

/** Every path in a store rooted at `root`. Pure: nothing here touches the disk. */
export class StoreLayout {
  constructor(readonly root: string) {
    for (const [name, path] of Object.entries(TOP_LEVEL)) Object.defineProperty(this, name, { value: join(root, path), enumerable: true });
  }

  blob(digest: string): string {
    return join(this.blobsDir, checkedHex(digest, "blob digest"));
  }
  layer(diffId: string): string {
    return join(this.layersDir, checkedHex(diffId, "layer diff-id"));
  }
  result(key: string): string {
    return join(this.resultsDir, `${resultHex(key)}.json`);
  }
  /** The record naming the gzip blob of layer `diffId`. */
  gzip(diffId: string): string {
    return join(this.gzipDir, checkedHex(diffId, "layer diff-id"));
  }
  /** The record naming the zstd blob of layer `diffId`. */
  zstd(diffId: string): string {
    return join(this.zstdDir, checkedHex(diffId, "layer diff-id"));
  }
  /** The record naming the `format` blob of layer `diffId`. */
  compressedRecord(diffId: string, format: LayerCompression): string {
    return format === "zstd" ? this.zstd(diffId) : this.gzip(diffId);
  }
  /** The persistent directory of a `caches` id: the id itself when it is a safe name, else a hash of it. */
  cache(id: string): string {
    const safe = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(id) ? id : "h-" + sha256Hex(id).slice(0, 32);
    return join(this.cachesDir, safe);
  }
  /** The package scan of a layer chain, by the chain's scan key (64 hex digits). */
  scan(key: string): string {
    if (!/^[a-f0-9]{64}$/.test(key)) throw new Error(`invalid scan key ${JSON.stringify(key)}`);
    return join(this.attestationsDir, `scan-${key}.json`);
  }
  /** What the scans learnt about the files of layer `diffId`: read again by every chain it is in. */
  layerScan(diffId: string): string {
    return join(this.attestationsDir, `layer-${checkedHex(diffId, "layer diff-id")}.json`);
  }
  /** The stat cache directory of the project at `projectDir` (one file per local source in it). */
  statCache(projectDir: string): string {
    return join(this.statCacheDir, sha256Hex(projectDir).slice(0, 32));
  }
}

/** How a layer blob is compressed in outputs, pushes and the store's records. */
export type LayerCompression = "gzip" | "zstd";
export const LAYER_COMPRESSIONS: readonly LayerCompression[] = ["gzip", "zstd"];

/** A gzip (or zstd) record's text. */
export function formatGzipRecord(gz: { digest: string; size: number; fromLayerDir?: boolean }): string {
  return `${gz.digest} ${gz.size}${gz.fromLayerDir ? " " + FROM_LAYER_DIR : ""}\n`;
}

/**
 * A record's third word when mstage compressed the layer from its extracted dir, the tar written
 * again from it (a stage's own layer): the dir gives the tar for any other format too, where a
 * pulled layer's dir need not.
 */
const FROM_LAYER_DIR = "from-layer-dir";

/** Parses a gzip record; null when it is not one. */
export function parseGzipRecord(text: string): { digest: string; size: number; fromLayerDir?: boolean } | null {
  const [d, size, from] = text.trim().split(" ");
  if (!d || hexOf(d) === null) return null;
  return from === FROM_LAYER_DIR ? { digest: d, size: Number(size), fromLayerDir: true } : { digest: d, size: Number(size) };
}

/** The minimal shape of a stored result that decides whether it can be used. */
export interface StoredResultShape {
  key: string;
  layers: { diffId: string }[];
}

/**
 * Whether layer `diffId` can be used from the store at `layout`: extracted, or its tar, or its
 * recorded gzip or zstd blob, is there.
 */
export function layerInStore(layout: StoreLayout, diffId: string): boolean {
  if (hexOf(diffId) === null) return false;
  if (existsSync(layout.layer(diffId)) || existsSync(layout.blob(diffId))) return true;
  return LAYER_COMPRESSIONS.some((f) => {
    const rec = readCompressedRecord(layout, diffId, f);
    return rec !== null && existsSync(layout.blob(rec.digest));
  });
}

/** The gzip blob recorded for layer `diffId`, or null. */
export function readGzipRecord(layout: StoreLayout, diffId: string): { digest: string; size: number } | null {
  return readCompressedRecord(layout, diffId, "gzip");
}

/** The `format` blob recorded for layer `diffId`, or null. */
export function readCompressedRecord(layout: StoreLayout, diffId: string, format: LayerCompression): { digest: string; size: number; fromLayerDir?: boolean } | null {
  try {
    return parseGzipRecord(readFileSync(layout.compressedRecord(diffId, format), "utf8"));
  } catch {
    return null;
  }
}

/**
 * The result record stored for stage key `key`, or null when there is none, it is unreadable or
 * not for this key, or any of its layers is gone (`hasLayer`, default layerInStore; pass a memo to
 * look each layer up once). This is the one rule both `plan` ("in store") and `up` (Store.getResult)
 * apply. Reads only; marking the result used is the runtime's business.
 */
export function readStoredResult<T extends StoredResultShape = StoredResultShape>(
  layout: StoreLayout,
  key: string,
  hasLayer: (diffId: string) => boolean = (d) => layerInStore(layout, d),
): T | null {
  const file = layout.result(key);
  let record: T;
  try {
    record = JSON.parse(readFileSync(file, "utf8")) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT" || e instanceof SyntaxError) return null;
    throw e;
  }
  if (record === null || typeof record !== "object" || record.key !== key || !Array.isArray(record.layers)) return null;
  for (const l of record.layers) {
    const diffId = typeof l?.diffId === "string" ? l.diffId : "";
    if (hexOf(diffId) === null || !hasLayer(diffId)) return null;
  }
  return record;
}
