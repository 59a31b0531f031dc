// Writes an OCI image layout 1.0 (`oci-layout`, `index.json`, `blobs/sha256/…`) the way stacker does:
// the directory is mstage's output and is replaced whole, so refs of stages that are gone do not
// linger and blobs nobody references are dropped with it. An `up` of some targets keeps the other
// refs (`keepOtherRefs`): their descriptors and every blob they reach are carried over. The new layout is built in a temp dir
// beside the target (same filesystem) and swapped in by rename: a failure before the swap leaves the
// previous layout exactly as it was. Blobs are copied from the store and hashed on the way (but for
// those this run wrote, hashing them then): a blob corrupted in the store is refused instead of
// exported, and an output never shares an inode with
// the store, so damage to one cannot reach the other (hard links did both). A non-empty directory
// without `oci-layout` is never replaced (a mistyped `--output oci:.`).
import { createHash, randomBytes } from "node:crypto";
import { constants as fsConstants, createReadStream } from "node:fs";
import { copyFile, link, mkdir, open, readFile, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { UserError, canonicalJson, writeNewFileSynced } from "@mstage/core";
import type { OciBlobStore } from "./blobs.ts";
import { digestHex, digestOf, parseDigest, type Digest } from "./digest.ts";
import { imageBlobs, type BuiltOutput } from "./manifest.ts";
import { Annotation, MediaType, isImageManifestType, isIndexType, type Descriptor, type ImageIndex, type ImageManifest, type OciLayoutFile } from "./types.ts";

/** One image in an output, and the names it goes by (the stage name and each of its tags). */
export interface OutputImage {
  refs: string[];
  /** An image, or an image index of per-platform images (a stage built with `platforms`). */
  image: BuiltOutput;
  /** Artifacts whose `subject` is this image (its SBOM and provenance), listed in index.json without a ref. */
  referrers?: ReadonlyArray<{ descriptor: Descriptor; config: Descriptor; layers: readonly Descriptor[] }>;
}

export interface WriteLayoutOptions {
  signal?: AbortSignal;
  /** How each blob got there, for `-v` output and tests: a verified copy from the store, or a link to the previous layout's. */
  onBlob?: (digest: Digest, how: "link" | "copy") => void;
  /** Refs the previous layout had that the new one does not (stages renamed, removed or untagged). */
  onDroppedRefs?: (refs: string[]) => void;
  /**
   * Keep the previous layout's images under refs that `images` does not name (an `up` of some
   * targets leaves the others as they were, like stacker and `docker build --target`).
   */
  keepOtherRefs?: boolean;
}

/** Writes `images` as the OCI layout `dir`, replacing what was there. Returns the index written. */
export async function writeOciLayout(
  dir: string,
  images: OutputImage[],
  store: OciBlobStore,
  options: WriteLayoutOptions = {},
): Promise<ImageIndex> {
  const target = resolve(dir);
  await recoverInterruptedSwap(target);
  await checkReplaceable(target);
  const kept = options.keepOtherRefs ? await otherImages(target, layoutIndex(images)) : { descriptors: [], blobs: [] };
  const index = layoutIndex(images, kept.descriptors);

  await mkdir(dirname(target), { recursive: true });
  const tmp = siblingPath(target, "tmp");
  try {
    await mkdir(join(tmp, "blobs", "sha256"), { recursive: true });
    const done = new Set<Digest>();
    const placing: Descriptor[] = [];
    for (const { image, referrers } of images) {
      for (const d of [...imageBlobs(image), ...(referrers ?? []).flatMap((r) => [r.descriptor, r.config, ...r.layers])]) {
        if (done.has(d.digest)) continue;
        placing.push(d);
        done.add(d.digest);
      }
    }
    // A few at a time: each is a copy and an fsync, and an image with its SBOM and provenance is
    // nine blobs, most of them small (one after the other: ~1.5 ms each on a VM's disk).
    await eachLimited(placing, BLOBS_AT_ONCE, async (d) => {
      options.signal?.throwIfAborted();
      const how = await placeBlob(store, d, join(tmp, "blobs", "sha256", digestHex(d.digest)));
      options.onBlob?.(d.digest, how);
    });
    for (const d of kept.blobs) {
      options.signal?.throwIfAborted();
      if (done.has(d)) continue;
      const how = await placeFile(join(target, "blobs", "sha256", digestHex(d)), join(tmp, "blobs", "sha256", digestHex(d)));
      options.onBlob?.(d, how);
      done.add(d);
    }
    const layoutFile: OciLayoutFile = { imageLayoutVersion: "1.0.0" };
    await writeNewFileSynced(join(tmp, "oci-layout"), canonicalJson(layoutFile));
    await writeNewFileSynced(join(tmp, "index.json"), canonicalJson(index));
    options.signal?.throwIfAborted();
    const dropped = (await previousRefs(target)).filter((r) => !index.manifests.some((m) => m.annotations?.[Annotation.refName] === r));
    await swapIn(tmp, target);
    if (dropped.length) options.onDroppedRefs?.(dropped);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return index;
}

const BLOBS_AT_ONCE = 8;

/**
 * Runs `work` on each item, `limit` at a time. After a failure no more are started, and the error is
 * thrown once every started one has settled: the caller removes the dir they write into only then.
 */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}

/**
 * The layout's index.json: one descriptor per ref (a manifest named twice appears twice, which is
 * how skopeo, umoci and stacker read `DIR:name`), sorted by ref so the bytes do not depend on order.
 */
export function layoutIndex(images: OutputImage[], kept: Descriptor[] = []): ImageIndex {
  const owner = new Map<string, Digest>();
  const manifests: Descriptor[] = [...kept];
  for (const { refs, image } of images) {
    if (!refs.length) throw new Error(`image ${image.descriptor.digest} has no ref to write it under`);
    for (const ref of refs) {
      checkRefName(ref);
      const prev = owner.get(ref);
      if (prev === image.descriptor.digest) continue;
      if (prev) throw new UserError(`two images want the ref "${ref}" in the output (${prev}, ${image.descriptor.digest}): give each stage its own tags`);
      owner.set(ref, image.descriptor.digest);
      manifests.push({
        mediaType: image.descriptor.mediaType,
        digest: image.descriptor.digest,
        size: image.descriptor.size,
        ...(image.descriptor.platform ? { platform: image.descriptor.platform } : {}),
        annotations: { [Annotation.refName]: ref },
      });
    }
  }
  // Referrers (an image's SBOM and provenance) have no ref: they follow the refs, found by reading
  // their `subject` as OCI 1.1 tools do.
  const listed = new Set(manifests.map((m) => m.digest));
  for (const { referrers } of images) {
    for (const r of referrers ?? []) {
      if (listed.has(r.descriptor.digest)) continue;
      listed.add(r.descriptor.digest);
      manifests.push(r.descriptor);
    }
  }
  const ref = (d: Descriptor) => d.annotations?.[Annotation.refName];
  manifests.sort((a, b) => (ref(a) === undefined ? 1 : 0) - (ref(b) === undefined ? 1 : 0) || cmp(ref(a) ?? "", ref(b) ?? "") || cmp(a.digest, b.digest));
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
}

// image-spec annotations.md: ref ::= component ("/" component)*, component ::= alphanum (separator alphanum)*,
// separator ::= [-._:@+] | "--". Full references like "registry.example.com/hello:1.0" qualify.
const REF_NAME_RE = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

function checkRefName(ref: string): void {
  if (!REF_NAME_RE.test(ref)) {
    throw new UserError(`"${ref}" cannot name an image in an OCI layout: use letters, digits and . _ - : @ + between them, "/" between parts`);
  }
}

const STORE_DAMAGED = "the store is damaged: run `mstage gc --verify` to remove what is corrupt, then `mstage up` again";

/**
 * Copies a store blob into the new layout, hashing it as it goes; a blob that does not match its
 * digest is refused. A blob this run wrote (and hashed as it wrote it) is copied without a hash.
 */
async function placeBlob(store: OciBlobStore, d: Descriptor, dest: string): Promise<"copy"> {
  if (!(await store.hasBlob(d.digest))) {
    throw new UserError(`blob ${d.digest} (${d.mediaType}) is missing from the store; ${STORE_DAMAGED}`);
  }
  const src = store.blobPath(d.digest);
  const st = await stat(src);
  if (st.size !== d.size) throw new UserError(`store blob ${src} is ${st.size} bytes, its descriptor says ${d.size}; ${STORE_DAMAGED}`);
  if (store.writtenHere?.(d.digest)) {
    // Hashed as this run wrote it: copied in the kernel (copy_file_range), not read through a hash again.
    await copyFile(src, dest, fsConstants.COPYFILE_EXCL);
    const out = await open(dest, "r");
    try {
      await out.sync();
    } finally {
      await out.close();
    }
    return "copy";
  }
  const hash = createHash("sha256");
  const out = await open(dest, "wx", 0o644);
  try {
    for await (const chunk of createReadStream(src, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      let off = 0;
      while (off < chunk.length) off += (await out.write(chunk, off, chunk.length - off)).bytesWritten;
    }
    await out.sync();
  } finally {
    await out.close();
  }
  const got = digestOf(hash);
  if (got !== d.digest) throw new UserError(`store blob ${src} does not match its digest (it hashes to ${got}); nothing was exported; ${STORE_DAMAGED}`);
  return "copy";
}

/** A blob of the previous layout kept in the new one: a hard link between two outputs when possible, else a copy. */
async function placeFile(src: string, dest: string): Promise<"link" | "copy"> {
  try {
    await link(src, dest);
    return "link";
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EXDEV" && code !== "EPERM" && code !== "EMLINK" && code !== "ENOTSUP") throw e;
  }
  await copyFile(src, dest);
  return "copy";
}

/**
 * Two renames: target → .old-<unique>, tmp → target, then the .old is removed. A crash between them
 * leaves no target but a complete .old, which recoverInterruptedSwap() puts back on the next write.
 * Two `up`s writing one layout at once: when another writer's layout lands between our renames,
 * ours is moved in over it on the next attempt, so the last writer wins and neither fails.
 */
const MAX_SWAP_ATTEMPTS = 30;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function swapIn(tmp: string, target: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const old = siblingPath(target, "old");
    let moved = false;
    try {
      await rename(target, old);
      moved = true;
    } catch (e) {
      if (errnoOf(e) !== "ENOENT") throw e;
    }
    try {
      await rename(tmp, target);
    } catch (e) {
      // Put the previous layout back; if someone else's is already there, ours is not needed.
      if (moved) await rename(old, target).catch(() => rm(old, { recursive: true, force: true }));
      const raced = errnoOf(e) === "ENOTEMPTY" || errnoOf(e) === "EEXIST";
      if (raced && attempt < MAX_SWAP_ATTEMPTS) {
        // Several writers retrying in step keep landing between each other's renames: a random
        // pause, growing with the attempts, lets one of them through each round.
        await sleep(Math.random() * 10 * attempt);
        continue;
      }
      throw e;
    }
    await syncDir(dirname(target));
    if (moved) await rm(old, { recursive: true, force: true });
    return;
  }
}

/** Puts back a layout that a crash left moved aside, and clears leftovers of old crashes. */
async function recoverInterruptedSwap(target: string): Promise<void> {
  const prefix = `.${basename(target)}.mstage-`;
  const leftovers: { path: string; kind: string; mtimeMs: number }[] = [];
  for (const name of await readdir(dirname(target)).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const kind = name.slice(prefix.length).split("-")[0]!;
    const path = join(dirname(target), name);
    const st = await stat(path).catch(() => null);
    if (st && (kind === "old" || kind === "tmp")) leftovers.push({ path, kind, mtimeMs: st.mtimeMs });
  }
  const olds = leftovers.filter((l) => l.kind === "old").sort((a, b) => b.mtimeMs - a.mtimeMs);
  if (olds.length && !(await exists(target))) {
    await rename(olds[0]!.path, target).catch(() => {});
  }
  // A live writer's dirs are young (an .old lives for two renames, a tmp for one copy of the
  // blobs); older ones were left by a process that died.
  const now = Date.now();
  for (const l of leftovers) {
    const stale = now - l.mtimeMs > (l.kind === "old" ? 60_000 : 3_600_000);
    if (stale && (await exists(target))) await rm(l.path, { recursive: true, force: true }).catch(() => {});
  }
}

/** Refuses to replace a directory that is not an OCI layout (a mistyped `--output oci:.`). */
async function checkReplaceable(target: string): Promise<void> {
  let entries: string[];
  try {
    const st = await stat(target);
    if (!st.isDirectory()) throw new UserError(`output ${target} exists and is not a directory; remove it or choose another --output`);
    entries = await readdir(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  if (entries.length && !entries.includes("oci-layout")) {
    throw new UserError(
      `output ${target} is not an OCI image layout (no oci-layout file) and is not empty; mstage replaces its output directory whole, so choose an empty or new directory`,
    );
  }
}

/**
 * The previous layout's descriptors under refs that `next` does not name, the descriptors without a
 * ref whose subject is one of them (attestations), and every blob they reach. A ref whose blobs are
 * not all in the old layout is dropped rather than written broken.
 */
async function otherImages(target: string, next: ImageIndex): Promise<{ descriptors: Descriptor[]; blobs: Digest[] }> {
  let old: Partial<ImageIndex>;
  try {
    old = JSON.parse(await readFile(join(target, "index.json"), "utf8")) as Partial<ImageIndex>;
  } catch {
    return { descriptors: [], blobs: [] };
  }
  const taken = new Set(next.manifests.map((m) => m.annotations?.[Annotation.refName]));
  const descriptors: Descriptor[] = [];
  const blobs = new Set<Digest>();
  const reach = async (d: Descriptor, into: Set<Digest>): Promise<void> => {
    const digest = parseDigest(d.digest);
    if (into.has(digest)) return;
    const path = join(target, "blobs", "sha256", digestHex(digest));
    if ((await stat(path)).size !== d.size) throw new UserError(`${path}: blob ${digest} has the wrong size (the layout was changed by something else); remove ${target} and run mstage up again`);
    into.add(digest);
    if (!isImageManifestType(d.mediaType) && !isIndexType(d.mediaType)) return;
    const m = JSON.parse(await readFile(path, "utf8")) as Partial<ImageManifest & ImageIndex>;
    for (const child of [m.config, ...(m.layers ?? []), ...(m.manifests ?? [])]) if (child) await reach(child, into);
  };
  const keep = async (d: Descriptor): Promise<boolean> => {
    const mine = new Set<Digest>();
    try {
      await reach(d, mine);
    } catch {
      return false;
    }
    descriptors.push(d);
    for (const b of mine) blobs.add(b);
    return true;
  };
  const keptDigests = new Set<string>();
  const unnamed: Descriptor[] = [];
  for (const d of old.manifests ?? []) {
    const ref = d.annotations?.[Annotation.refName];
    if (ref === undefined) unnamed.push(d);
    else if (!taken.has(ref) && (await keep(d))) keptDigests.add(d.digest);
  }
  for (const d of unnamed) {
    const subject = await readFile(join(target, "blobs", "sha256", digestHex(parseDigest(d.digest))), "utf8")
      .then((t) => (JSON.parse(t) as { subject?: Descriptor }).subject?.digest)
      .catch(() => undefined);
    if (subject && keptDigests.has(subject)) await keep(d);
  }
  return { descriptors, blobs: [...blobs] };
}

/** The refs named in an existing layout's index.json; none when there is no readable one. */
async function previousRefs(target: string): Promise<string[]> {
  try {
    const index = JSON.parse(await readFile(join(target, "index.json"), "utf8")) as Partial<ImageIndex>;
    return (index.manifests ?? []).flatMap((m) => {
      const ref = m.annotations?.[Annotation.refName];
      return typeof ref === "string" ? [ref] : [];
    });
  } catch {
    return [];
  }
}

function siblingPath(target: string, what: string): string {
  return join(dirname(target), `.${basename(target)}.mstage-${what}-${process.pid}-${randomBytes(4).toString("hex")}`);
}

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
