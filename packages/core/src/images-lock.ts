// `images.lock` (committed beside images.ts): image tags pinned to digests, debian() bases pinned to
// package versions, git() refs to commits, unpinned http() URLs to their digests. JSON with sorted
// keys so diffs stay small.
import { readFileIfPresent, writeFileAtomicSync } from "./atomic-file.ts";
import { join } from "node:path";
import { UserError } from "./errors.ts";
import { isSha256Digest } from "./digest.ts";
import { canonicalJson } from "./canonical.ts";
import type { DebianBase } from "./model.ts";

export interface LockFile {
  /** ref as written in images.ts → manifest digest (an index's, for a multi-platform tag) */
  images: Record<string, string>;
  /**
   * A multi-platform tag's per-platform manifest digests, as pulled: ref → platform → digest. The
   * pull of a pinned platform fetches that manifest directly.
   */
  platforms: Record<string, Record<string, string>>;
  /** debianLockKey(base) → resolved package versions */
  debian: Record<string, { packages: Record<string, string> }>;
  /** gitLockKey(url, ref) → the commit the ref resolved to (40 hex digits). */
  git: Record<string, string>;
  /** URL of an http() source without sha256 (allowed by --allow-unpinned) → the digest downloaded. */
  http: Record<string, string>;
}

/** The key of a git() source in images.lock: "URL#ref", as BuildKit's ADD writes a git source. */
export function gitLockKey(url: string, ref: string): string {
  return `${url}#${ref}`;
}

export function lockPath(projectDir: string): string {
  return join(projectDir, "images.lock");
}

export async function readLock(projectDir: string): Promise<LockFile> {
  const file = lockPath(projectDir);
  const text = readFileIfPresent(file);
  if (text === undefined) return { images: {}, platforms: {}, debian: {}, git: {}, http: {} };
  let data: Partial<LockFile> | null;
  try {
    data = JSON.parse(text) as Partial<LockFile>;
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message}); fix it or delete it to re-resolve`);
  }
  const images = data?.images ?? {};
  for (const [ref, digest] of Object.entries(images)) {
    if (!isSha256Digest(digest)) {
      throw new UserError(`${file}: images[${JSON.stringify(ref)}] is ${JSON.stringify(digest)}, not a sha256 digest (sha256:<64 hex digits>); fix it or delete the entry to re-resolve`);
    }
  }
  const platforms = data?.platforms ?? {};
  for (const [ref, byPlatform] of Object.entries(platforms)) {
    for (const [platform, digest] of Object.entries(byPlatform ?? {})) {
      if (!isSha256Digest(digest)) {
        throw new UserError(`${file}: platforms[${JSON.stringify(ref)}][${JSON.stringify(platform)}] is ${JSON.stringify(digest)}, not a sha256 digest (sha256:<64 hex digits>); fix it or delete the entry to re-resolve`);
      }
    }
  }
  const git = data?.git ?? {};
  for (const [key, commit] of Object.entries(git)) {
    if (typeof commit !== "string" || !/^[a-f0-9]{40}$/.test(commit)) {
      throw new UserError(`${file}: git[${JSON.stringify(key)}] is ${JSON.stringify(commit)}, not a commit id (40 hex digits); fix it or delete the entry to re-resolve`);
    }
  }
  const http = data?.http ?? {};
  for (const [url, digest] of Object.entries(http)) {
    if (!isSha256Digest(digest)) {
      throw new UserError(`${file}: http[${JSON.stringify(url)}] is ${JSON.stringify(digest)}, not a sha256 digest (sha256:<64 hex digits>); fix it or delete the entry to download it again`);
    }
  }
  return { images, platforms, debian: data?.debian ?? {}, git, http };
}

export async function writeLock(projectDir: string, lock: LockFile): Promise<void> {
  const file = lockPath(projectDir);
  // No empty "platforms", "git" or "http": the lock of a project without them reads as before.
  const data: Partial<LockFile> = { ...lock };
  for (const k of ["platforms", "git", "http"] as const) if (!Object.keys(lock[k] ?? {}).length) delete data[k];
  const pretty = JSON.stringify(JSON.parse(canonicalJson(data)), null, 2) + "\n";
  writeFileAtomicSync(file, pretty);
}

/**
 * The key of a debian() base in images.lock: its canonical arguments, readable. The platform is
 * named unless it is linux/amd64, the one every lock written before platforms were honoured meant.
 */
export function debianLockKey(b: DebianBase): string {
  const mirror = b.mirror ? ` ${b.mirror}` : "";
  const pkgs = b.packages.length ? ` +${[...b.packages].sort().join(",")}` : "";
  const platform = b.platform && b.platform !== "linux/amd64" ? ` for ${b.platform}` : "";
  return `${b.suite}/${b.variant ?? "minbase"}${mirror}${pkgs}${platform}`;
}
