// Extracting a layer into the store: its tar (plain or gzip) applied in overlay-lower format in the
// store's tmp/, checked against its diff-id, and renamed into layers/ once whole.
import { rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import type { Digest } from "../oci/digest.ts";
import { DigestMismatchError } from "@mstage/core";
import type { Store } from "../store/store.ts";
import { applyLayer } from "./apply.ts";

/** Extractions under way in this process, per store and diff-id: one runs, the others wait for it. */
const extracting = new WeakMap<Store, Map<string, Promise<string>>>();

/**
 * The layer extracted in overlay-lower format, extracting it once if needed from `open()` (plain
 * or gzip tar), or by default from the store: the uncompressed blob, else its recorded gzip blob.
 * The tar must hash to `diffId` (so the default source is read without a second digest check);
 * extraction happens in tmp/ and appears by one rename, so a concurrent or interrupted extraction
 * never leaves a half layer under layers/.
 */
export async function ensureLayerExtracted(
  store: Store,
  diffId: Digest,
  open?: () => Readable,
  opts: { onNote?: (msg: string) => void; what?: string } = {},
): Promise<string> {
  if (store.hasLayerDir(diffId)) return store.layerDir(diffId);
  let running = extracting.get(store);
  if (!running) extracting.set(store, (running = new Map()));
  const pending = running.get(diffId);
  if (pending) return pending;
  const work = (async () => {
    const tmp = store.tmpDir("layer");
    try {
      const { diffId: got } = await applyLayer(open ? open() : store.openLayerTar(diffId), tmp, { mode: "overlay", onNote: opts.onNote, what: opts.what ?? `layer ${diffId}` });
      if (got !== diffId) throw new DigestMismatchError(diffId, got, `layer ${diffId}`);
      return store.placeLayerDir(diffId, tmp);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  })();
  running.set(diffId, work);
  try {
    return await work;
  } finally {
    running.delete(diffId);
  }
}
