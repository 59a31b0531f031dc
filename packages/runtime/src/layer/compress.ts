// Compressed blobs of a layer, made lazily (on export or push) and remembered: the local build loop
// only ever pays tar + sha256, and a layer is compressed at most once per store and format.
import { gzipBlob } from "../oci/gzip.ts";
import type { Digest } from "../oci/digest.ts";
import { layerMediaType } from "../oci/types.ts";
import { zstdBlob } from "../oci/zstd.ts";
import type { LayerCompression } from "@mstage/core";
import type { Store } from "../store/store.ts";

export interface CompressedLayer {
  digest: Digest;
  size: number;
  mediaType: string;
}

export interface CompressLayerOptions {
  /** Called with the uncompressed bytes done so far and the layer's whole size, while compressing. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * The `format` blob of layer `diffId` (default gzip: oci's deterministic parallel gzip; zstd through
 * Debian's zstd), remembered as diff-id → blob so that gc keeps it with the layer and later exports
 * reuse it. A layer the store holds only compressed (a pulled base) keeps the blob it came in,
 * whatever `format` asks: it is not unpacked to be compressed again (a manifest may mix gzip and
 * zstd layers, as buildah's and containerd's do).
 */
export async function compressLayer(store: Store, diffId: Digest, format: LayerCompression = "gzip", opts: CompressLayerOptions = {}): Promise<CompressedLayer> {
  const known = store.compressedOf(diffId, format);
  if (known && store.hasBlob(known.digest)) return { ...known, mediaType: layerMediaType(format) };
  if (!store.hasBlob(diffId)) {
    for (const other of ["gzip", "zstd"] as const) {
      const rec = store.compressedOf(diffId, other);
      if (rec && store.hasBlob(rec.digest)) return { ...rec, mediaType: layerMediaType(other) };
    }
  }
  const total = store.blobSize(diffId) ?? 0;
  const onProgress = opts.onProgress && ((done: number) => opts.onProgress!(done, total));
  const result = format === "zstd" ? await zstdBlob(store, diffId, { onProgress }) : await gzipBlob(store, diffId, { onProgress });
  await store.recordCompressed(diffId, result, format);
  opts.onProgress?.(total, total);
  return { ...result, mediaType: layerMediaType(format) };
}
