// A just-committed upper dir made into the layer's extracted form, instead of extracting the tar it
// was committed to (issue 16). The upper dir holds what the tar was made of, but in overlayfs's own
// bookkeeping: its whiteouts, its origin/impure xattrs, sockets and devices commit leaves out.
// Normalised here to exactly what apply.ts gives from the tar, then renamed into layers/.
import { linkSync, lstatSync, readdirSync, rmSync, unlinkSync } from "node:fs";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import type { Store } from "../store/store.ts";
import { syncTree } from "../store/atomic-files.ts";
import type { LayerRef } from "../store/results.ts";
import { commitLayerToStore, digestLayer, type CommitOptions } from "./commit.ts";
import { isOverlayOpaque, isOverlayWhiteout, makeOverlayWhiteout, OVERLAY_OPAQUE_XATTR } from "./whiteouts.ts";
import { isOverlayPrivate, readTreeXattrs, writeXattrs, type Xattrs } from "./xattr.ts";

/**
 * Commits an upper dir (on the store's filesystem) as a layer without writing its tar: the dir is
 * normalised, its tar hashed as it is read (times clamped on the way), and the dir renamed into layers/ as
 * that layer, made durable (its files fsynced, or one syncfs for a large tree). ensureLayerTar() writes the identical tar from it when
 * an export or push needs it. If the dir cannot be adopted, its tar is written as a blob instead.
 * The tree's xattrs are read once, for normalising and for the tar.
 */
export async function commitAndAdopt(store: Store, upper: string, opts: CommitOptions): Promise<LayerRef> {
  // getfattr walks the tree in its own process while normalising walks it here.
  const reading = readTreeXattrs(upper);
  reading.catch(() => undefined);
  let layer: LayerRef;
  let placed: string;
  try {
    await normaliseUpperDir(upper, reading);
    const xattrs = await reading;
    // Hashed after normalising, times clamped in the same walk: what is hashed is exactly the dir
    // the tar is written from later. Normalising does not change the tar (whiteouts stay 0/0
    // devices; overlayfs's own xattrs, sockets and devices are left out of it anyway), and the
    // xattrs read before give the same.
    layer = await digestLayer(upper, { ...opts, xattrs, clampTimes: true });
    placed = store.placeLayerDir(layer.diffId, upper, { sync: false });
  } catch {
    // Wherever it stopped, the dir still holds the layer: its tar becomes the layer's blob.
    return commitLayerToStore(store, upper, opts);
  }
  // The dir is the layer's only copy until a tar is needed: durable before its result is recorded.
  await syncTree(placed, store.layout.layersDir);
  return layer;
}

/**
 * Rewrites an overlay upper dir into the form apply.ts ("overlay" mode) extracts its commit to:
 * - whiteouts become hardlinks of one fresh 0/0 device (owner, mode and link count as extracted);
 * - sockets and devices, which commit leaves out of the tar, are removed;
 * - overlayfs's private xattrs (origin, impure, redirect…) go; an opaque dir keeps exactly
 *   `user.overlay.opaque=y`, the only one the tar's `.wh..wh..opq` gives back.
 * Times are left to the commit's walk, after this (removing entries changes dir mtimes).
 */
export async function normaliseUpperDir(upper: string, xattrs?: Map<string, Xattrs> | Promise<Map<string, Xattrs>>): Promise<void> {
  const whiteouts = new Set<string>();
  const doomed: string[] = [];
  const walk = (rel: string) => {
    const abs = rel ? join(upper, rel) : upper;
    for (const d of readdirSync(abs, { withFileTypes: true })) {
      const path = rel ? rel + "/" + d.name : d.name;
      if (d.isDirectory()) walk(path);
      else if (d.isCharacterDevice() && isOverlayWhiteout(lstatSync(join(upper, path)))) whiteouts.add(path);
      else if (d.isSocket() || d.isCharacterDevice() || d.isBlockDevice()) doomed.push(path);
    }
  };
  walk("");
  // Removed only once the xattrs are read: a getfattr still walking must not find entries gone.
  const attrsOf = await (xattrs ?? readTreeXattrs(upper));
  for (const path of doomed) rmSync(join(upper, path));
  const removals = new Map<string, string[]>();
  const opaque: string[] = [];
  for (const [rel, attrs] of attrsOf) {
    // Entries removed above were read with the xattrs before them.
    const st = whiteouts.has(rel) ? undefined : lstatSync(join(upper, rel), { throwIfNoEntry: false });
    if (!st) continue;
    const isDir = rel !== "" && st.isDirectory();
    const wantOpaque = isDir && isOverlayOpaque(attrs);
    for (const [name, value] of attrs) {
      if (!isOverlayPrivate(name)) continue;
      if (wantOpaque && name === OVERLAY_OPAQUE_XATTR && value.toString() === "y") continue;
      removals.set(name, [...(removals.get(name) ?? []), rel === "" ? "." : rel]);
    }
    if (wantOpaque && !attrs.some(([n, v]) => n === OVERLAY_OPAQUE_XATTR && v.toString() === "y")) opaque.push(rel);
  }
  for (const [name, paths] of removals) await removeXattr(upper, name, paths);
  if (opaque.length) {
    const refused = await writeXattrs(upper, opaque.map((rel) => ({ rel, name: OVERLAY_OPAQUE_XATTR, value: Buffer.from("y") })));
    if (refused.length) throw new Error(`cannot mark opaque directories: ${refused.join("; ")}`);
  }

  if (whiteouts.size) {
    const template = join(dirname(upper), `.whiteout-${process.pid}-${Date.now()}`);
    makeOverlayWhiteout(template);
    try {
      for (const w of whiteouts) {
        unlinkSync(join(upper, w));
        linkSync(template, join(upper, w));
      }
    } finally {
      rmSync(template, { force: true });
    }
  }
}

/** One `setfattr -x` per xattr name, for many files at once (a spawn per file costs ~1 ms). */
async function removeXattr(dir: string, name: string, paths: string[]): Promise<void> {
  for (let i = 0; i < paths.length; i += 500) {
    const chunk = paths.slice(i, i + 500);
    await new Promise<void>((resolve, reject) => {
      const child = spawn("setfattr", ["-h", "-x", name, "--", ...chunk], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr.on("data", (c: Buffer) => (err += c.toString()));
      child.on("error", reject);
      child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`setfattr -x ${name} in ${dir} failed: ${err.trim()}`))));
    });
  }
}
