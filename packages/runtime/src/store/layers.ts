// The store's layers: extracted dirs at layers/<hex of diff-id>/ (overlay-lower format), and the
// gzip/<hex> and zstd/<hex> records saying which blob is the gzip (zstd) of which layer. Extraction itself (tar → dir)
// is layer/extract.ts; this file only places, finds and opens what the store holds.
import { existsSync, lstatSync, lutimesSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { LAYER_COMPRESSIONS, UserError, formatGzipRecord, fsyncDir, readCompressedRecord, type LayerCompression, type StoreLayout } from "@mstage/core";
import type { Digest } from "../oci/digest.ts";
import { errno, writeFileAtomic } from "./atomic-files.ts";
import { hasBlob, openBlob } from "./blobs.ts";

export function hasLayerDir(layout: StoreLayout, diffId: Digest): boolean {
  return existsSync(layout.layer(diffId));
}

/**
 * Moves `dir` (on the store's filesystem) into place as the extracted form of layer `diffId`, or
 * removes it when another copy is already there (an extraction that finished first is as good).
 * `sync: false` when the caller has made `dir` durable and records the result durably afterwards
 * (that record's fsync commits this rename with it).
 */
export function placeLayerDir(layout: StoreLayout, diffId: Digest, dir: string, opts: { sync?: boolean } = {}): string {
  const target = layout.layer(diffId);
  try {
    renameSync(dir, target);
  } catch (e) {
    if (!["ENOTEMPTY", "EEXIST"].includes(errno(e) ?? "")) throw e;
    rmSync(dir, { recursive: true, force: true });
  }
  if (opts.sync !== false) fsyncDir(layout.layersDir);
  return target;
}

/**
 * Makes `dir` (on the store's filesystem, e.g. a work dir from tmpDir()) the extracted form of
 * layer `diffId`, instead of extracting the layer's tar again: for an overlay upper dir or a rootfs
 * that was just committed as that layer. Its mtimes are clamped and truncated exactly as the tar
 * has them, so a later stage sees the same files whether the layer was adopted or extracted.
 * `dir` is moved (or removed, if the layer is already extracted); returns the layer dir.
 */
export function adoptLayerDir(layout: StoreLayout, diffId: Digest, dir: string, opts: { sourceDateEpoch: number }): string {
  const target = layout.layer(diffId);
  if (existsSync(target)) {
    rmSync(dir, { recursive: true, force: true });
    return target;
  }
  clampTimes(dir, opts.sourceDateEpoch);
  return placeLayerDir(layout, diffId, dir);
}

/** Remembers that blob `blob` is the `format` (gzip by default) of layer `diffId` (from compressLayer, or a pulled layer). */
export async function recordCompressed(layout: StoreLayout, diffId: Digest, blob: { digest: Digest; size: number; fromLayerDir?: boolean }, format: LayerCompression = "gzip"): Promise<void> {
  await writeFileAtomic(layout.compressedRecord(diffId, format), formatGzipRecord(blob), layout.tmpDir);
}

export function compressedOf(layout: StoreLayout, diffId: Digest, format: LayerCompression = "gzip"): { digest: Digest; size: number; fromLayerDir?: boolean } | null {
  return readCompressedRecord(layout, diffId, format) as { digest: Digest; size: number; fromLayerDir?: boolean } | null;
}

/** The blob that holds layer `diffId`: its tar, else its gzip, else its zstd blob; null when none is stored. */
export function layerBlob(layout: StoreLayout, diffId: Digest): Digest | null {
  if (hasBlob(layout, diffId)) return diffId;
  for (const format of LAYER_COMPRESSIONS) {
    const rec = compressedOf(layout, diffId, format);
    if (rec && hasBlob(layout, rec.digest)) return rec.digest;
  }
  return null;
}

/** The layer's tar as stored (plain, else gzip, else zstd), unverified: for readers that check the diff-id themselves. */
export function openLayerTar(layout: StoreLayout, diffId: Digest): Readable {
  const blob = layerBlob(layout, diffId);
  if (blob) return openBlob(layout, blob, { verify: false });
  throw new UserError(`layer ${diffId} is not in the store ${layout.root} (neither its tar nor a gzip or zstd blob of it); rebuild with --no-cache`);
}

/** Sets every mtime below `dir` to what commit writes into the tar: whole seconds, at most `epoch`. */
function clampTimes(dir: string, epoch: number): void {
  const visit = (path: string) => {
    const st = lstatSync(path);
    if (st.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
    const t = Math.min(Math.floor(st.mtimeMs / 1000), epoch);
    if (st.mtimeMs !== t * 1000) lutimesSync(path, t, t);
  };
  for (const name of readdirSync(dir)) visit(join(dir, name));
}
