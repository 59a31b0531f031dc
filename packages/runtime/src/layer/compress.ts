// Gzip of a layer, made lazily (on export or push) and remembered: the local build loop only ever
// pays tar + sha256, and a layer is compressed at most once per store.
import { gzipBlob } from "../oci/gzip.ts";
import type { Digest } from "../oci/digest.ts";
import type { Store } from "../store/store.ts";

/**
 * The gzip blob of layer `diffId` (its uncompressed blob must be in the store), made with oci's
 * reproducible gzip (fixed header), and remembered as diff-id → gzip digest so that gc keeps it with
 * the layer and later exports reuse it.
 */
export async function compressLayer(store: Store, diffId: Digest): Promise<{ digest: Digest; size: number }> {
  const known = store.compressedOf(diffId);
  if (known && store.hasBlob(known.digest)) return known;
  const result = await gzipBlob(store, diffId);
  await store.recordCompressed(diffId, result);
  return result;
}
