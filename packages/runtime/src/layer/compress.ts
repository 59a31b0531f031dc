// Gzip of a layer, made lazily (on export or push) and remembered: the local build loop only ever
// pays tar + sha256, and a layer is compressed at most once per store.
import { createGzip, constants as zlib } from "node:zlib";
import { pipeline } from "node:stream/promises";
import { PassThrough } from "node:stream";
import type { Digest } from "../oci/digest.ts";
import type { Store } from "../store/store.ts";

/**
 * The gzip blob of layer `diffId` (its uncompressed blob must be in the store). Reproducible: fixed
 * level, and Node's gzip header carries no name or mtime, so the same tar gives the same digest.
 */
export async function compressLayer(store: Store, diffId: Digest): Promise<{ digest: Digest; size: number }> {
  const known = store.compressedOf(diffId);
  if (known && store.hasBlob(known.digest)) return known;
  const gz = createGzip({ level: 6, memLevel: 8, strategy: zlib.Z_DEFAULT_STRATEGY });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const writing = store.writeBlob(out, undefined, { what: `gzip of layer ${diffId}` });
  await pipeline(store.openBlob(diffId), gz, out);
  const result = await writing;
  await store.recordCompressed(diffId, result);
  return result;
}
