// Turns a final image config into an OCI image: gzip or zstd layer blobs (made lazily, once per diff-id),
// the config blob and the manifest blob, all written to the store so outputs and pushes can use them.
import { canonicalBlob } from "./canonical.ts";
import type { LayerCompressor, OciBlobStore } from "./blobs.ts";
import type { Digest } from "./digest.ts";
import { gzipBlob } from "./gzip.ts";
import { Annotation, MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from "./types.ts";

export interface ImageInput {
  /** The final config (see config.ts); its rootfs.diff_ids name the layers, base first. */
  config: ImageConfig;
  /** The stage's own `annotations`; they win over the ones mstage fills. */
  annotations?: Readonly<Record<string, string>>;
  /** Set when the image's chain starts from a registry or OCI image: the base.* annotations. */
  base?: { name: string; digest: Digest };
}

/** An image whose blobs are all in the store. What the layout, archive and push writers take. */
export interface BuiltImage {
  manifest: ImageManifest;
  /** The manifest's own descriptor (mediaType, digest, size, platform). */
  descriptor: Descriptor;
  config: ImageConfig;
  configDescriptor: Descriptor;
  /** Per layer, base first: the uncompressed diff-id and the compressed blob's descriptor. */
  layers: Array<{ diffId: Digest; descriptor: Descriptor }>;
}

/**
 * Writes an image's config and manifest blobs into the store, compressing layers that have no
 * compressed blob yet. Same config, annotations and compression → same bytes → same manifest digest.
 * @param options.compress the store's `compressLayer` (cached, knows pulled layers' blobs);
 *   default: gzipBlob(), which needs the uncompressed layer in the store and compresses every call
 */
export async function buildImage(
  store: OciBlobStore,
  input: ImageInput,
  options: { compress?: LayerCompressor } = {},
): Promise<BuiltImage> {
  const compress: LayerCompressor = options.compress ?? ((diffId: Digest) => gzipBlob(store, diffId));
  const diffIds = input.config.rootfs.diff_ids;

  // Each layer's compression already runs on every core; layers still go side by side, so a small
  // layer's compression overlaps a large one's write.
  const unique = [...new Set(diffIds)];
  const results = await Promise.all(unique.map((d) => compress(d)));
  const compressed = new Map(unique.map((d, i) => [d, results[i]!] as const));
  const layers = diffIds.map((diffId) => {
    const c = compressed.get(diffId)!;
    return { diffId, descriptor: { mediaType: c.mediaType ?? MediaType.ociLayerGzip, digest: c.digest, size: c.size } };
  });

  const configBlob = canonicalBlob(input.config);
  await store.writeBlob(configBlob.bytes, configBlob.digest);
  const configDescriptor: Descriptor = { mediaType: MediaType.ociConfig, digest: configBlob.digest, size: configBlob.size };

  const annotations: Record<string, string> = {};
  if (input.config.created !== undefined) annotations[Annotation.created] = input.config.created;
  if (input.base) {
    annotations[Annotation.baseName] = input.base.name;
    annotations[Annotation.baseDigest] = input.base.digest;
  }
  Object.assign(annotations, input.annotations ?? {});

  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDescriptor,
    layers: layers.map((l) => l.descriptor),
    ...(Object.keys(annotations).length ? { annotations } : {}),
  };
  const manifestBlob = canonicalBlob(manifest);
  await store.writeBlob(manifestBlob.bytes, manifestBlob.digest);

  const { architecture, os, variant } = input.config;
  return {
    manifest,
    descriptor: {
      mediaType: MediaType.ociManifest,
      digest: manifestBlob.digest,
      size: manifestBlob.size,
      platform: { architecture, os, ...(variant ? { variant } : {}) },
    },
    config: input.config,
    configDescriptor,
    layers,
  };
}

/** A multi-platform image: an OCI image index of per-platform images, all blobs in the store. */
export interface BuiltIndex {
  index: ImageIndex;
  /** The index's own descriptor (no platform). */
  descriptor: Descriptor;
  /** In the index's order. */
  images: BuiltImage[];
}

/** What an output ref points at. */
export type BuiltOutput = BuiltImage | BuiltIndex;

export function isBuiltIndex(x: BuiltOutput): x is BuiltIndex {
  return "images" in x;
}

/**
 * Writes an image index of `images` (each descriptor carries its platform) into the store. Same
 * images in the same order → same bytes → same digest.
 */
export async function buildIndex(store: OciBlobStore, images: BuiltImage[], annotations?: Readonly<Record<string, string>>): Promise<BuiltIndex> {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: images.map((i) => i.descriptor),
    ...(annotations && Object.keys(annotations).length ? { annotations: { ...annotations } } : {}),
  };
  const blob = canonicalBlob(index);
  await store.writeBlob(blob.bytes, blob.digest);
  return { index, descriptor: { mediaType: MediaType.ociIndex, digest: blob.digest, size: blob.size }, images };
}

/** Every blob an image or index needs, deduplicated: manifests, configs, layers. */
export function imageBlobs(image: BuiltOutput): Descriptor[] {
  const seen = new Set<Digest>();
  const out: Descriptor[] = [];
  const all = isBuiltIndex(image)
    ? [image.descriptor, ...image.images.flatMap((i) => [i.descriptor, i.configDescriptor, ...i.layers.map((l) => l.descriptor)])]
    : [image.descriptor, image.configDescriptor, ...image.layers.map((l) => l.descriptor)];
  for (const d of all) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    out.push(d);
  }
  return out;
}

/** Total bytes of an image as stored in a layout (manifest + config + compressed layers). */
export function imageSize(image: BuiltOutput): number {
  return imageBlobs(image).reduce((n, d) => n + d.size, 0);
}
