// A just-committed upper dir made into the layer's extracted form, instead of extracting the tar it
// was committed to (issue 16). The upper dir holds what the tar was made of, but in overlayfs's own
// bookkeeping: its whiteouts, its origin/impure xattrs, sockets and devices commit leaves out.
// Normalised here to exactly what apply.ts gives from the tar, then renamed into layers/.
import { linkSync, lstatSync, rmSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { Store } from "../store/store.ts";
import { syncTree } from "../store/atomic-files.ts";
import type { LayerRef } from "../store/results.ts";
import { commitLayerToStore, digestScanning, setFacts, type CommitOptions, type TreeScan } from "./commit.ts";
import { createOverlayWhiteout, isOverlayOpaque, OVERLAY_OPAQUE_XATTR } from "./whiteouts.ts";
import { isOverlayPrivate, removeXattr, writeXattrs, type Xattrs } from "./xattr.ts";

/**
 * Commits an upper dir (on the store's filesystem) as a layer without writing its tar: the dir is
 * listed once (while getfattr reads its xattrs in its own process) and normalised, its tar hashed
 * as it is read (times clamped on the way), and the dir renamed into layers/ as that layer, made
 * durable (its files fsynced, or one syncfs for a large tree). ensureLayerTar() writes the
 * identical tar from it when an export or push needs it. If the dir cannot be adopted, its tar is
 * written as a blob instead.
 */
export async function commitAndAdopt(store: Store, upper: string, opts: CommitOptions & AdoptOptions): Promise<LayerRef> {
  let layer: LayerRef;
  try {
    // One listing serves both: normalising updates what it changed in it. Each entry is hashed
    // after normalising changed it, times clamped in the same walk: what is hashed is exactly the
    // dir the tar is written from later. Normalising does not change the tar (whiteouts stay 0/0
    // devices; overlayfs's own xattrs, sockets and devices are left out of it anyway), so the
    // xattrs read before give the same. Its tar is hashed on a thread (store/blob-pipe.ts).
    layer = await digestScanning(upper, opts, normaliseScanned);
    // Pending until makeLayerDurable: a crash before it has the layer committed again, never built on.
    store.placeLayerDir(layer.diffId, upper, { sync: false, pending: true });
  } catch {
    // Wherever it stopped, the dir still holds the layer: its tar becomes the layer's blob.
    return commitLayerToStore(store, upper, opts);
  }
  // The dir is the layer's only copy until a tar is needed: durable before its result is recorded.
  if (!opts.syncLater) await makeLayerDurable(store, layer.diffId);
  return layer;
}

export interface AdoptOptions {
  /**
   * The caller makes the layer durable itself (makeLayerDurable) before it records a result naming
   * it, outside the stage's job slot. Until then the layer may be read (a later stage's lower dir)
   * but not recorded.
   */
  syncLater?: boolean;
}

/** What commitAndAdopt does last: the layer dir of `diffId` made durable, its files fsynced (or one syncfs for a large tree). */
export async function makeLayerDurable(store: Store, diffId: LayerRef["diffId"]): Promise<void> {
  await syncTree(store.layerDir(diffId), store.layout.layersDir);
  store.layerDirDurable(diffId);
}

/**
 * Rewrites a scanned overlay upper dir into the form apply.ts ("overlay" mode) extracts its commit to:
 * - whiteouts become hardlinks of one fresh 0/0 device (owner, mode and link count as extracted);
 * - sockets and devices, which commit leaves out of the tar, are removed;
 * - overlayfs's private xattrs (origin, impure, redirect…) go; an opaque dir keeps exactly
 *   `user.overlay.opaque=y`, the only one the tar's `.wh..wh..opq` gives back.
 * Times are left to the commit's walk, after this (removing entries changes dir mtimes).
 */
async function normaliseScanned(scan: TreeScan, attrsOf: Map<string, Xattrs>): Promise<void> {
  const upper = scan.root;
  const removals = new Map<string, string[]>();
  const opaque: string[] = [];
  if (attrsOf.size) {
    const whiteouts = new Set(scan.whiteouts);
    const gone = new Set(scan.unsupported);
    for (const [rel, attrs] of attrsOf) {
      if (whiteouts.has(rel) || gone.has(rel)) continue;
      const st = rel === "" ? undefined : lstatSync(upper + "/" + rel, { throwIfNoEntry: false });
      const wantOpaque = !!st?.isDirectory() && isOverlayOpaque(attrs);
      for (const [name, value] of attrs) {
        if (!isOverlayPrivate(name)) continue;
        if (wantOpaque && name === OVERLAY_OPAQUE_XATTR && value.toString() === "y") continue;
        removals.set(name, [...(removals.get(name) ?? []), rel === "" ? "." : rel]);
      }
      if (wantOpaque && !attrs.some(([n, v]) => n === OVERLAY_OPAQUE_XATTR && v.toString() === "y")) opaque.push(rel);
    }
  }
  for (const [name, paths] of removals) await removeXattr(upper, name, paths);
  if (opaque.length) {
    const refused = await writeXattrs(upper, opaque.map((rel) => ({ rel, name: OVERLAY_OPAQUE_XATTR, value: Buffer.from("y") })));
    if (refused.length) throw new Error(`cannot mark opaque directories: ${refused.join("; ")}`);
  }

  if (!scan.unsupported.length && !scan.whiteouts.length) return;
  for (const path of scan.unsupported) rmSync(upper + "/" + path);
  if (scan.whiteouts.length) {
    const template = `${dirname(upper)}/.whiteout-${process.pid}-${Date.now()}`;
    await createOverlayWhiteout(template);
    try {
      for (const w of scan.whiteouts) {
        unlinkSync(upper + "/" + w);
        linkSync(template, upper + "/" + w);
      }
    } finally {
      rmSync(template, { force: true });
    }
  }
  // The scan's stats of the whiteouts (now the one device) and of their dirs (whose mtimes the
  // changes set to now) are stale; the tar's walk takes their times from these.
  const stale = new Set([...scan.whiteouts, ...[...scan.unsupported, ...scan.whiteouts].map((p) => p.slice(0, Math.max(0, p.lastIndexOf("/"))))]);
  for (const entry of scan.entries) if (stale.has(entry.path)) setFacts(entry, lstatSync(upper + "/" + entry.path));
}
