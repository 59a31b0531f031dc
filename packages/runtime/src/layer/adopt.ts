// A just-committed upper dir made into the layer's extracted form, instead of extracting the tar it
// was committed to (issue 16). The upper dir holds what the tar was made of, but in overlayfs's own
// bookkeeping: its whiteouts, its origin/impure xattrs, sockets and devices commit leaves out.
// Normalised here to exactly what apply.ts gives from the tar, then renamed into layers/.
import { linkSync, lstatSync, readdirSync, rmSync, unlinkSync } from "node:fs";
import { rm } from "node:fs/promises";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import type { Store } from "../store/store.ts";
import type { LayerRef } from "../store/results.ts";
import { commitLayerToStore, type CommitOptions } from "./commit.ts";
import { isOverlayOpaque, isOverlayWhiteout, makeOverlayWhiteout, OVERLAY_OPAQUE_XATTR } from "./whiteouts.ts";
import { isOverlayPrivate, readTreeXattrs, writeXattrs, type Xattrs } from "./xattr.ts";

/**
 * Commits an upper dir (on the store's filesystem) as a layer blob, then makes the dir that layer's
 * extracted form by one rename, once the blob is durable. The tree's xattrs are read once for both.
 * If adopting fails the dir is removed, and the layer is extracted from its blob when needed.
 */
export async function commitAndAdopt(store: Store, upper: string, opts: CommitOptions): Promise<LayerRef> {
  const xattrs = await readTreeXattrs(upper);
  const layer = await commitLayerToStore(store, upper, { ...opts, xattrs });
  if (store.hasLayerDir(layer.diffId)) return layer;
  try {
    await normaliseUpperDir(upper, xattrs);
    store.adoptLayerDir(layer.diffId, upper, { sourceDateEpoch: opts.sourceDateEpoch });
  } catch {
    await rm(upper, { recursive: true, force: true }).catch(() => undefined);
  }
  return layer;
}

/**
 * Rewrites an overlay upper dir into the form apply.ts ("overlay" mode) extracts its commit to:
 * - whiteouts become hardlinks of one fresh 0/0 device (owner, mode and link count as extracted);
 * - sockets and devices, which commit leaves out of the tar, are removed;
 * - overlayfs's private xattrs (origin, impure, redirect…) go; an opaque dir keeps exactly
 *   `user.overlay.opaque=y`, the only one the tar's `.wh..wh..opq` gives back.
 * Times are left to Store.adoptLayerDir, after this (removing entries changes dir mtimes).
 */
export async function normaliseUpperDir(upper: string, xattrs?: Map<string, Xattrs>): Promise<void> {
  const whiteouts = new Set<string>();
  const walk = (rel: string) => {
    const abs = rel ? join(upper, rel) : upper;
    for (const d of readdirSync(abs, { withFileTypes: true })) {
      const path = rel ? rel + "/" + d.name : d.name;
      if (d.isDirectory()) walk(path);
      else if (d.isCharacterDevice() && isOverlayWhiteout(lstatSync(join(upper, path)))) whiteouts.add(path);
      else if (d.isSocket() || d.isCharacterDevice() || d.isBlockDevice()) rmSync(join(upper, path));
    }
  };
  walk("");

  xattrs ??= await readTreeXattrs(upper);
  const removals = new Map<string, string[]>();
  const opaque: string[] = [];
  for (const [rel, attrs] of xattrs) {
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
