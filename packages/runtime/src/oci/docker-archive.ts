// Writes a `docker save`-format tar (manifest.json + config + one layer.tar per layer) that
// `docker load` and `podman load` accept. Layers go in uncompressed, as `docker save` writes them;
// a layer only held gzipped in the store (a pulled base) is unpacked into the store first, checked
// against its diff-id. Written to a temp file beside `file` and renamed: atomic.
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import type { Pack } from "tar-stream";
import { UserError } from "@mstage/core";
import { canonicalBlob } from "./canonical.ts";
import type { OciBlobStore } from "./blobs.ts";
import { digestHex, type Digest } from "./digest.ts";
import type { BuiltImage } from "./manifest.ts";
import { layerCompressionOf } from "./types.ts";
import { zstdDecompressor } from "./zstd.ts";

/** One entry of a docker-archive's manifest.json. */
export interface DockerArchiveManifestEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

export interface WriteArchiveOptions {
  signal?: AbortSignal;
  /** mtime of the archive's own entries; default 0 (SOURCE_DATE_EPOCH), so the tar is reproducible. */
  sourceDateEpoch?: number;
}

/**
 * Writes `images` into one docker-archive tar at `file`, replacing it atomically. The format has no
 * image index: a multi-platform output passes the one platform's image it wants.
 */
export async function writeDockerArchive(
  file: string,
  images: Array<{ refs: string[]; image: BuiltImage }>,
  store: OciBlobStore,
  options: WriteArchiveOptions = {},
): Promise<DockerArchiveManifestEntry[]> {
  const target = resolve(file);
  try {
    if ((await stat(target)).isDirectory()) {
      throw new UserError(`output docker-archive:${file} is a directory; give a file name such as ./image.tar`);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  await mkdir(dirname(target), { recursive: true });

  // Resolve every layer to an uncompressed store blob before opening the output.
  const entries: DockerArchiveManifestEntry[] = [];
  const files = new Map<string, Digest>(); // name in the archive → store blob
  const tags = new Set<string>();
  for (const { refs, image } of images) {
    const layers: string[] = [];
    for (const layer of image.layers) {
      const name = `${digestHex(layer.diffId)}/layer.tar`;
      if (!files.has(name)) {
        options.signal?.throwIfAborted();
        await ensureUncompressed(store, layer.diffId, layer.descriptor.digest, layer.descriptor.mediaType);
        files.set(name, layer.diffId);
      }
      layers.push(name);
    }
    const configName = `${digestHex(image.configDescriptor.digest)}.json`;
    files.set(configName, image.configDescriptor.digest);
    const repoTags = refs.flatMap((r) => {
      const t = repoTag(r);
      if (t === undefined || tags.has(t)) return [];
      tags.add(t);
      return [t];
    });
    entries.push({ Config: configName, RepoTags: repoTags, Layers: layers });
  }
  const manifestJson = canonicalBlob(entries).bytes;

  const tmp = join(dirname(target), `.${basename(target)}.mstage-tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  const out = createWriteStream(tmp, { flags: "wx", mode: 0o644 });
  // Loaded on use: tar-stream takes ~15 ms to load, which every `up` would pay otherwise.
  const tar = (await import("tar-stream")).default.pack();
  // tar-stream's streams are streamx, not Node streams: plain pipe(), and wait for the file to close.
  const written = new Promise<void>((res, rej) => {
    out.on("close", res);
    out.on("error", rej);
    tar.on("error", rej);
  });
  written.catch(() => {}); // awaited below; keeps an early failure from counting as unhandled
  tar.pipe(out);
  const mtime = new Date((options.sourceDateEpoch ?? 0) * 1000);
  try {
    for (const [name, digest] of files) {
      options.signal?.throwIfAborted();
      const size = (await stat(store.blobPath(digest))).size;
      await addStream(tar, { name, size, mtime }, store.openBlob(digest));
    }
    await addBuffer(tar, { name: "manifest.json", mtime }, manifestJson);
    tar.finalize();
    await written;
    const fh = await open(tmp, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (e) {
    tar.destroy();
    out.destroy();
    await rm(tmp, { force: true });
    throw e;
  }
  return entries;
}

/**
 * `docker load` wants `name:tag`: a bare name gets ":latest" (as `docker tag` would); digest refs
 * cannot be RepoTags and are left out.
 */
export function repoTag(ref: string): string | undefined {
  if (ref.includes("@")) return undefined;
  const lastSlash = ref.lastIndexOf("/");
  return ref.slice(lastSlash + 1).includes(":") ? ref : `${ref}:latest`;
}

async function ensureUncompressed(store: OciBlobStore, diffId: Digest, blob: Digest, mediaType: string): Promise<void> {
  if (await store.hasBlob(diffId)) return;
  const format = layerCompressionOf(mediaType);
  if (!format) {
    throw new UserError(`layer ${diffId} is not in the store uncompressed and its blob ${blob} is ${mediaType}, which mstage cannot unpack; write an oci: output instead, or use a base whose layers are gzip, zstd or plain tar`);
  }
  const gunzip = format === "zstd" ? zstdDecompressor() : createGunzip();
  const written = store.writeBlob(gunzip, diffId);
  await Promise.all([pipeline(store.openBlob(blob), gunzip), written]);
}

interface EntryHeader {
  name: string;
  size?: number;
  mtime: Date;
}

function header(h: EntryHeader) {
  return { ...h, type: "file" as const, mode: 0o644, uid: 0, gid: 0, uname: "", gname: "" };
}

function addBuffer(tar: Pack, h: EntryHeader, data: Buffer): Promise<void> {
  return new Promise((res, rej) => tar.entry({ ...header(h), size: data.length }, data, (err) => (err ? rej(err) : res())));
}

function addStream(tar: Pack, h: EntryHeader, src: Readable): Promise<void> {
  return new Promise((res, rej) => {
    const entry = tar.entry(header(h), (err) => (err ? rej(err) : res()));
    src.on("error", (err) => {
      entry.destroy(err);
      rej(err);
    });
    src.pipe(entry);
  });
}
