// `mstage ls` and `mstage gc` over a store: what results there are, and removing what no remaining
// result references (oldest results first when the store must shrink below a size).
import { lstatSync, readdirSync, readFileSync, renameSync, rmSync, statSync, type Stats } from "node:fs";
import { join } from "node:path";
import { LAYER_COMPRESSIONS, readCompressedRecord, tagAlive, tempName, type StoreLayout } from "@mstage/core";
import { isDigest } from "../oci/digest.ts";
import type { StageResult } from "./results.ts";

export interface ResultInfo {
  key: string;
  stage?: string;
  project?: string;
  /** The record's `created` (clamped to SOURCE_DATE_EPOCH by the builder, so often 1970). */
  created: string;
  /** When it was stored (its record file's birth time). */
  stored: Date;
  /** When a build last used it (its record's mtime). */
  lastUsed: Date;
  layers: number;
  /** Uncompressed size of the whole layer chain. */
  size: number;
  /** Uncompressed size of its own (last) layer. */
  ownSize: number;
}

export interface GcOptions {
  /** Shrink the store below this many bytes by dropping the least recently used results first. */
  maxSize?: number;
  /** Say what would go; remove nothing. */
  dryRun?: boolean;
}

export interface GcReport {
  removedResults: ResultInfo[];
  removedBlobs: number;
  removedLayers: number;
  removedTmp: number;
  /** Package scans (attestations/) of layers or layer chains no remaining result has. */
  removedAttestations: number;
  /** Bytes freed (or that would be). */
  freed: number;
  sizeBefore: number;
  sizeAfter: number;
}

interface ResultFile {
  file: string;
  record: StageResult | null;
  mtime: Date;
  birth: Date;
}

function readResults(layout: StoreLayout): ResultFile[] {
  const dir = layout.resultsDir;
  const out: ResultFile[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.endsWith(".json")) continue;
    const file = join(dir, name);
    let record: StageResult | null = null;
    let mtime = new Date(0);
    let birth = new Date(0);
    try {
      const st = statSync(file);
      mtime = st.mtime;
      birth = st.birthtimeMs > 0 ? st.birthtime : st.ctime;
      record = JSON.parse(readFileSync(file, "utf8")) as StageResult;
      if (!Array.isArray(record.layers) || !record.layers.every((l) => isDigest(l.diffId))) record = null;
    } catch {
      record = null;
    }
    out.push({ file, record, mtime, birth });
  }
  return out;
}

function info(record: StageResult, f: ResultFile): ResultInfo {
  const sizes = record.layers.map((l) => l.size ?? 0);
  return {
    key: record.key,
    stage: record.stage,
    project: record.project,
    created: record.created,
    stored: f.birth,
    lastUsed: f.mtime,
    layers: record.layers.length,
    size: sizes.reduce((a, b) => a + b, 0),
    ownSize: sizes.at(-1) ?? 0,
  };
}

/** Every result in the store, most recently used first. */
export function listResults(layout: StoreLayout): ResultInfo[] {
  return readResults(layout)
    .filter((r) => r.record)
    .map((r) => info(r.record!, r))
    .sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime());
}

/** Disk usage of a file or tree (allocated blocks; hardlinked inodes once). */
function usage(path: string, seen = new Set<string>()): number {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch {
    return 0;
  }
  const id = `${st.dev}:${st.ino}`;
  if (seen.has(id)) return 0;
  seen.add(id);
  let total = st.blocks * 512;
  if (st.isDirectory()) for (const name of readdirSync(path)) total += usage(join(path, name), seen);
  return total;
}

/** The store's items, each with its size: "blob:<hex>", "layer:<hex>", "gzip:<hex>", "zstd:<hex>". */
function inventory(layout: StoreLayout): Map<string, number> {
  const items = new Map<string, number>();
  for (const hex of readdirSync(layout.blobsDir)) items.set(`blob:${hex}`, usage(join(layout.blobsDir, hex)));
  for (const hex of readdirSync(layout.layersDir)) items.set(`layer:${hex}`, usage(join(layout.layersDir, hex)));
  for (const hex of readdirSync(layout.gzipDir)) items.set(`gzip:${hex}`, 0);
  for (const hex of readdirSync(layout.zstdDir)) items.set(`zstd:${hex}`, 0);
  return items;
}

/** What a result keeps alive. */
function refsOf(layout: StoreLayout, r: StageResult): Set<string> {
  const refs = new Set<string>();
  const hex = (d: string) => d.slice("sha256:".length);
  for (const l of r.layers) {
    refs.add(`blob:${hex(l.diffId)}`);
    refs.add(`layer:${hex(l.diffId)}`);
    for (const format of LAYER_COMPRESSIONS) {
      refs.add(`${format}:${hex(l.diffId)}`);
      const rec = readCompressedRecord(layout, l.diffId, format);
      if (rec) refs.add(`blob:${hex(rec.digest)}`);
    }
  }
  for (const b of r.blobs ?? []) if (isDigest(b)) refs.add(`blob:${hex(b)}`);
  return refs;
}

/** Removes an item; a layer dir is first renamed into tmp/, so a gc cut short never leaves half a layer in layers/. */
function removeItem(layout: StoreLayout, item: string): void {
  const [kind, hex] = item.split(":");
  if (kind === "blob") rmSync(join(layout.blobsDir, hex), { force: true });
  else if (kind === "gzip") rmSync(join(layout.gzipDir, hex), { force: true });
  else if (kind === "zstd") rmSync(join(layout.zstdDir, hex), { force: true });
  else {
    const doomed = tempName(layout.tmpDir, "gc");
    renameSync(join(layout.layersDir, hex), doomed);
    rmSync(doomed, { recursive: true, force: true });
  }
}

/**
 * Removes results (oldest use first, only while the store is over `maxSize`) and then every blob,
 * extracted layer and temp entry that no remaining result references. The caller holds the store's
 * exclusive lock (or passes dryRun), and runs inside the user namespace: extracted layers hold
 * files of mapped ids.
 */
export function collectGarbage(layout: StoreLayout, opts: GcOptions = {}): GcReport {
  const results = readResults(layout).sort((a, b) => a.mtime.getTime() - b.mtime.getTime());
  const items = inventory(layout);
  const refcount = new Map<string, number>();
  const refs = results.map((r) => (r.record ? refsOf(layout, r.record) : new Set<string>()));
  for (const set of refs) for (const i of set) refcount.set(i, (refcount.get(i) ?? 0) + 1);

  const sizeBefore = [...items.values()].reduce((a, b) => a + b, 0);
  let unreferenced = 0;
  for (const [item, size] of items) if (!refcount.get(item)) unreferenced += size;

  const removedResults: ResultInfo[] = [];
  const dropped = new Set<number>();
  // Invalid records go whatever the size.
  results.forEach((r, i) => r.record === null && dropped.add(i));
  if (opts.maxSize !== undefined) {
    let size = sizeBefore - unreferenced;
    for (let i = 0; i < results.length && size > opts.maxSize; i++) {
      if (dropped.has(i)) continue;
      dropped.add(i);
      removedResults.push(info(results[i].record!, results[i]));
      for (const item of refs[i]) {
        const left = (refcount.get(item) ?? 1) - 1;
        refcount.set(item, left);
        if (left === 0) size -= items.get(item) ?? 0;
      }
    }
  }

  const doomed = [...items.keys()].filter((item) => !refcount.get(item));
  const scans = doomedScans(layout, (hex) => !!refcount.get(`layer:${hex}`) || !!refcount.get(`blob:${hex}`));
  const freed = doomed.reduce((a, item) => a + (items.get(item) ?? 0), 0) + scans.reduce((a, f) => a + usage(f), 0);
  const tmpDir = layout.tmpDir;
  const staleTmp = readdirSync(tmpDir).filter((name) => !tagAlive(name.split(".").slice(0, 2).join(".")));

  if (!opts.dryRun) {
    // Results first: a result never points at something already gone.
    for (const i of dropped) rmSync(results[i].file, { force: true });
    for (const item of doomed) removeItem(layout, item);
    for (const file of scans) rmSync(file, { force: true });
    for (const name of staleTmp) rmSync(join(tmpDir, name), { recursive: true, force: true });
  }
  return {
    removedResults,
    removedBlobs: doomed.filter((i) => i.startsWith("blob:")).length,
    removedLayers: doomed.filter((i) => i.startsWith("layer:")).length,
    removedTmp: staleTmp.length,
    removedAttestations: scans.length,
    freed,
    sizeBefore,
    sizeAfter: sizeBefore - freed,
  };
}

/**
 * The scans in attestations/ whose layers are no longer kept: a layer's record once no result has
 * that layer, a chain's scan once any layer of its chain is gone (or it does not say its layers).
 */
function doomedScans(layout: StoreLayout, kept: (diffIdHex: string) => boolean): string[] {
  let names: string[];
  try {
    names = readdirSync(layout.attestationsDir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const name of names) {
    const file = join(layout.attestationsDir, name);
    const layer = /^layer-([a-f0-9]{64})\.json$/.exec(name);
    if (layer) {
      if (!kept(layer[1]!)) out.push(file);
    } else if (/^scan-[a-f0-9]{64}\.json$/.test(name)) {
      let layers: unknown;
      try {
        layers = (JSON.parse(readFileSync(file, "utf8")) as { layers?: unknown }).layers;
      } catch {
        layers = undefined;
      }
      const alive = Array.isArray(layers) && layers.every((d) => typeof d === "string" && isDigest(d) && kept(d.slice("sha256:".length)));
      if (!alive) out.push(file);
    }
  }
  return out;
}

/** Parses "10G", "500MB" (powers of 1000, as sizes are printed), "2GiB" (powers of 1024) or bytes. */
export function parseByteSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?)b?)?\s*$/i.exec(text);
  if (!m) return null;
  const power = m[2] ? "kmgt".indexOf(m[2].toLowerCase()) + 1 : 0;
  const base = m[3] ? 1024 : 1000;
  return Math.floor(Number(m[1]) * base ** power);
}
