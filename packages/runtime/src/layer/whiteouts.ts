// Deletions in a layer, in both spellings: the OCI tar's `.wh.<name>` entries and `.wh..wh..opq`
// opaque markers, and overlayfs's 0/0 character devices and `overlay.opaque` xattr. apply.ts reads
// the first and writes the second; commit.ts reads the second and writes the first.
import { spawnSync } from "node:child_process";
import type { Stats } from "node:fs";
import { UserError } from "@mstage/core";
import { runTool } from "../sandbox/tool-runner.ts";
import { findTool } from "../sandbox/tools.ts";
import type { Xattrs } from "./xattr.ts";

/** A tar entry `dir/.wh.x` deletes `dir/x` from the layers below. */
export const WH_PREFIX = ".wh.";
/** A tar entry `dir/.wh..wh..opq` hides everything lower layers put in `dir`. */
export const WH_OPAQUE = ".wh..wh..opq";
/** The xattr mstage sets on an opaque dir in an overlay lower dir it extracted itself. */
export const OVERLAY_OPAQUE_XATTR = "user.overlay.opaque";

/** An overlay whiteout: a character device with device number 0/0. */
export function isOverlayWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** An overlay dir marked opaque, whether by mstage (user.) or by a privileged overlayfs (trusted.). */
export function isOverlayOpaque(attrs: Xattrs | undefined): boolean {
  return !!attrs?.some(([n, v]) => (n === OVERLAY_OPAQUE_XATTR || n === "trusted.overlay.opaque") && v.toString() === "y");
}

function whiteoutError(file: string, detail: string | undefined): UserError {
  return new UserError(
    `cannot create an overlay whiteout (mknod ${file} c 0 0): ${detail}; layers must be extracted inside mstage's user namespace`,
  );
}

/**
 * Makes the 0/0 char device at `file` that a layer's overlay whiteouts are hardlinked to, as
 * overlayfs itself does (mknod needs a process, so one per layer, not one per whiteout).
 */
export function makeOverlayWhiteout(file: string): void {
  const r = spawnSync("mknod", [file, "c", "0", "0"]);
  if (r.status !== 0) throw whiteoutError(file, r.stderr?.toString().trim() || r.error?.message);
}

/** makeOverlayWhiteout without blocking, through the sandbox's small shell (a spawn of this process costs more than a small commit). */
export async function createOverlayWhiteout(file: string): Promise<void> {
  await runTool(findTool("mknod") ?? "/usr/bin/mknod", [file, "c", "0", "0"]).catch((e: { stderr?: string; message: string }) => {
    throw whiteoutError(file, e.stderr?.trim() || e.message);
  });
}
