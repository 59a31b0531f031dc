// Reading an OCI image layout on disk (index.json and blobs/sha256/), the one reader that `plan`,
// the no-op `up` check and the builder's oci() bases share. Writing layouts is the runtime's
// (oci/layout.ts).
import { readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { isSha256Digest } from "./digest.ts";
import { UserError } from "./errors.ts";
import type { OciBase } from "./model.ts";
import { hostPlatform, parsePlatform, selectPlatform, type Platform } from "./platform.ts";

/** The annotation that names an image in a layout's index. */
export const REF_NAME = "org.opencontainers.image.ref.name";

export interface OciIndexEntry {
  mediaType?: string;
  digest: string;
  size?: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** A layout's index.json, or undefined when the directory holds none (or it is not JSON). */
export function readOciIndex(dir: string): OciIndexEntry[] | undefined {
  try {
    const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as { manifests?: unknown };
    return Array.isArray(index?.manifests) ? (index.manifests as OciIndexEntry[]) : [];
  } catch {
    return undefined;
  }
}

/** Where a blob of a layout lives; a digest that is not sha256:<64 hex> names no file. */
export function ociLayoutBlob(dir: string, digest: string): string {
  if (!isSha256Digest(digest)) throw new UserError(`${JSON.stringify(digest)} is not a sha256 digest (sha256:<64 hex digits>)`);
  return join(dir, "blobs", "sha256", digest.slice("sha256:".length));
}

/** The ref an index entry is named by, if any. */
export function refNameOf(entry: OciIndexEntry): string | undefined {
  return entry.annotations?.[REF_NAME];
}

/**
 * The index entry an oci() base means: the one its ref names, or the layout's only one; of several
 * that all name their platform (a multi-platform image written flat), the one for `platform`
 * (default the host's). Its digest is the base's identity (an image manifest, or a nested index the
 * builder picks a platform from).
 */
export function ociBaseEntry(base: OciBase, projectDir: string, platform?: string): { dir: string; entry: OciIndexEntry } {
  const dir = isAbsolute(base.layout) ? base.layout : resolve(projectDir, base.layout);
  let text: string;
  try {
    text = readFileSync(join(dir, "index.json"), "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`oci(${JSON.stringify(base.layout)}): cannot read ${join(dir, "index.json")}: ${code === "ENOENT" ? "not an OCI image layout" : (e as Error).message}`);
  }
  let manifests: OciIndexEntry[];
  try {
    const index = JSON.parse(text) as { manifests?: unknown };
    manifests = Array.isArray(index?.manifests) ? (index.manifests as OciIndexEntry[]) : [];
  } catch (e) {
    throw new UserError(`oci(${JSON.stringify(base.layout)}): ${join(dir, "index.json")} is not JSON: ${(e as Error).message}`);
  }
  // The digest becomes part of the stage key and, in the builder, a path in the layout.
  for (const m of manifests) {
    if (!isSha256Digest(m?.digest)) {
      throw new UserError(`oci(${JSON.stringify(base.layout)}): ${join(dir, "index.json")} names a manifest as ${JSON.stringify(m?.digest)}, which is not a sha256 digest (sha256:<64 hex digits>)`);
    }
  }
  const named = base.ref === undefined ? manifests : manifests.filter((x) => refNameOf(x) === base.ref);
  if (named.length > 1 && named.every((m) => m.platform && !/index|manifest\.list/.test(m.mediaType ?? ""))) {
    const want = platform && platform !== "host" ? parsePlatform(platform) : hostPlatform();
    return { dir, entry: selectPlatform(named, want, `oci(${JSON.stringify(base.layout)}${base.ref !== undefined ? `, ${JSON.stringify(base.ref)}` : ""})`) };
  }
  if (base.ref !== undefined) {
    const m = manifests.find((x) => refNameOf(x) === base.ref);
    if (!m) {
      const names = manifests.map(refNameOf).filter(Boolean);
      throw new UserError(`oci(${JSON.stringify(base.layout)}, ${JSON.stringify(base.ref)}): no image with that ref; the layout has: ${names.join(", ") || "no named refs"}`);
    }
    return { dir, entry: m };
  }
  if (manifests.length !== 1) {
    throw new UserError(`oci(${JSON.stringify(base.layout)}): the layout holds ${manifests.length} images; name one: oci(${JSON.stringify(base.layout)}, "<ref>")`);
  }
  return { dir, entry: manifests[0]! };
}
