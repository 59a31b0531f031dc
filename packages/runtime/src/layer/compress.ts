// Compressed blobs of a layer, made lazily (on export or push) and remembered: the local build loop
// only ever pays sha256 of a stage's tree (its tar is not even written, layer/adopt.ts), and a layer
// is compressed at most once per store and format.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { changedLayerError, ensureLayerTar, storedLayerTar } from "./commit.ts";
import { gzipBlob, gzipChunks } from "../oci/gzip.ts";
import { digestOf, type Digest } from "../oci/digest.ts";
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
  /** The layer tar's size (its LayerRef's), for progress while the tar is written from the layer's dir. */
  size?: number;
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
  if (known && store.hasBlob(known.digest)) return { digest: known.digest, size: known.size, mediaType: layerMediaType(format) };
  if (!store.hasBlob(diffId)) {
    for (const other of ["gzip", "zstd"] as const) {
      const rec = store.compressedOf(diffId, other);
      // A blob compressed from the layer's dir says that dir gives the tar: `format` is made from it.
      if (rec && store.hasBlob(rec.digest) && !(rec.fromLayerDir && store.hasLayerDir(diffId))) {
        return { digest: rec.digest, size: rec.size, mediaType: layerMediaType(other) };
      }
    }
  }
  // A stage's own layer is kept as its extracted dir only (layer/adopt.ts): gzip reads its tar
  // as it is written again from that dir; zstd reads a file, so the tar is stored first.
  const fromDir = format === "gzip" && !store.hasBlob(diffId) && store.hasLayerDir(diffId);
  if (!fromDir) await ensureLayerTar(store, diffId);
  const total = store.blobSize(diffId) ?? opts.size;
  // Without a known size, only the last progress call (done = total) is made.
  const onProgress = opts.onProgress && total !== undefined ? (done: number) => opts.onProgress!(done, total) : undefined;
  let result: { digest: Digest; size: number };
  let tarSize = total ?? 0;
  if (fromDir) ({ blob: result, tarSize } = await gzipLayerDir(store, diffId, onProgress));
  else result = format === "zstd" ? await zstdBlob(store, diffId, { onProgress }) : await gzipBlob(store, diffId, { onProgress });
  // A blob recorded meanwhile (a gzip tarball() file of the same tar, imported while this ran) is
  // kept, and one recorded after this replaces it: the blob an export gets does not depend on
  // which finished first.
  const kept = await store.recordCompressed(diffId, { ...result, fromLayerDir: fromDir }, format, { ifAbsent: true });
  opts.onProgress?.(tarSize, tarSize);
  return { digest: kept.digest, size: kept.size, mediaType: layerMediaType(format) };
}

/** Gzips layer `diffId`'s tar as it is written again from its extracted dir; nothing is stored unless the tar has the layer's digest. */
async function gzipLayerDir(store: Store, diffId: Digest, onProgress?: (done: number) => void): Promise<{ blob: { digest: Digest; size: number }; tarSize: number }> {
  const dir = store.layerDir(diffId);
  const hash = createHash("sha256");
  let tarSize = 0;
  async function* checked(): AsyncGenerator<Buffer> {
    for await (const chunk of storedLayerTar(dir) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      tarSize += chunk.length;
      yield chunk;
    }
    const got = digestOf(hash);
    if (got !== diffId) throw changedLayerError(diffId, dir, got);
  }
  const blob = await store.writeBlob(Readable.from(gzipChunks(checked(), { onProgress }), { objectMode: false }));
  return { blob, tarSize };
}
