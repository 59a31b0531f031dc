// The store's layers: extracted dirs at layers/<hex of diff-id>/ (overlay-lower format), and the
// gzip/<hex> and zstd/<hex> records saying which blob is the gzip (zstd) of which layer. Extraction itself (tar → dir)
// is layer/extract.ts; this file only places, finds and opens what the store holds.
import { existsSync, lstatSync, lutimesSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { LAYER_COMPRESSIONS, UserError, formatGzipRecord, fsyncDir, processTag, readCompressedRecord, tagAlive, tempName, type LayerCompression, type StoreLayout } from "@mstage/core";
import type { Digest } from "../oci/digest.ts";
import { errno, writeFileAtomic } from "./atomic-files.ts";
import { hasBlob, openBlob } from "./blobs.ts";
import { pidNamespace } from "./store-lock.ts";

/**
 * Whether layer `diffId`'s extracted dir is in the store. A dir whose files may not be on disk yet
 * has a `.pending` file beside it, naming the process that placed it: while that process runs, the
 * dir is its build's and is trusted (whoever records a result on it syncs it first); once it is gone
 * (killed, or the machine lost power), the dir may hold files that lost their data, and it is
 * removed here, so that it is extracted or committed again instead of being built on.
 */
export function hasLayerDir(layout: StoreLayout, diffId: Digest): boolean {
  const target = layout.layer(diffId);
  if (!existsSync(target)) return false;
  const owner = readPending(layout, diffId);
  if (owner === undefined || pendingOwnerLive(owner)) return true;
  const doomed = tempName(layout.tmpDir, "pending");
  try {
    renameSync(target, doomed);
  } catch (e) {
    // Another process removed it first.
    if (errno(e) !== "ENOENT") throw e;
  }
  rmSync(pendingFile(layout, diffId), { force: true });
  rmSync(doomed, { recursive: true, force: true });
  return false;
}

/**
 * Moves `dir` (on the store's filesystem) into place as the extracted form of layer `diffId`, or
 * removes it when another copy is already there (an extraction that finished first is as good).
 * `sync: false` when the caller has made `dir` durable and records the result durably afterwards
 * (that record's fsync commits this rename with it). `pending`: `dir`'s files are not durable yet;
 * a `.pending` file (durable before the dir appears) says so until layerDirDurable() removes it.
 */
export function placeLayerDir(layout: StoreLayout, diffId: Digest, dir: string, opts: { sync?: boolean; pending?: boolean } = {}): string {
  const target = layout.layer(diffId);
  if (opts.pending && !hasLayerDir(layout, diffId)) {
    writeFileSync(pendingFile(layout, diffId), pendingOwner());
    fsyncDir(layout.layersDir);
  }
  try {
    renameSync(dir, target);
  } catch (e) {
    if (!["ENOTEMPTY", "EEXIST"].includes(errno(e) ?? "")) throw e;
    rmSync(dir, { recursive: true, force: true });
  }
  if (opts.sync !== false) fsyncDir(layout.layersDir);
  return target;
}

/** Layer `diffId`'s dir has been made durable (its files fsynced): it is no longer pending. */
export function layerDirDurable(layout: StoreLayout, diffId: Digest): void {
  rmSync(pendingFile(layout, diffId), { force: true });
}

function pendingFile(layout: StoreLayout, diffId: Digest): string {
  return layout.layer(diffId) + ".pending";
}

/** This process, as a .pending file names it: its tag, the boot it runs in, its pid namespace. */
function pendingOwner(): string {
  return `${processTag()} ${bootId()} ${pidNamespace()}\n`;
}

function readPending(layout: StoreLayout, diffId: Digest): string | undefined {
  try {
    return readFileSync(pendingFile(layout, diffId), "utf8");
  } catch (e) {
    if (errno(e) === "ENOENT") return undefined;
    throw e;
  }
}

/** Whether the process a .pending file names still runs; one in another pid namespace is taken to. */
function pendingOwnerLive(owner: string): boolean {
  const [tag = "", boot = "", pidns = ""] = owner.trim().split(" ");
  if (boot !== bootId()) return false;
  return pidns !== pidNamespace() || tagAlive(tag);
}

let boot: string | undefined;
function bootId(): string {
  try {
    boot ??= readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    boot = "";
  }
  return boot;
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
  if (hasLayerDir(layout, diffId)) {
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
