// A layer chain's package scan carried through a registry build cache (--cache-to/--cache-from):
// an OCI 1.1 referrer of the cached stage's manifest, so a store that takes the stage from the
// cache takes its scan too and makes the same SBOM without mounting or reading the layers.
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Digest } from "../oci/digest.ts";
import type { Descriptor, ImageManifest } from "../oci/types.ts";
import type { RegistryClient } from "../registry/client.ts";
import { fetchBlobToStore, fetchManifest } from "../registry/pull.ts";
import type { Reference } from "../registry/reference.ts";
import { writeFileAtomic } from "../store/atomic-files.ts";
import type { Store } from "../store/store.ts";
import { makeArtifact } from "./artifact.ts";
import { scanKey } from "./attest.ts";
import { listReferrers, pushReferrers } from "./push.ts";
import { SCAN_VERSION } from "./types.ts";

export const SCAN_MEDIA_TYPE = "application/vnd.dev.mstage.scan+json";
/** A scan file is a few MB for a large image; anything far beyond is not one of ours. */
const MAX_SCAN_BYTES = 256 << 20;

/** Attaches the store's scan of `diffIds` to the cached manifest `subject`; false when the store has none. */
export async function pushCachedScan(client: RegistryClient, repo: Reference, subject: Descriptor, store: Store, diffIds: readonly Digest[]): Promise<boolean> {
  const bytes = await readFile(store.layout.scan(scanKey(diffIds))).catch(() => undefined);
  if (!bytes) return false;
  const artifact = await makeArtifact(store, { kind: "scan", artifactType: SCAN_MEDIA_TYPE, document: bytes, subject, created: new Date(0).toISOString() });
  await pushReferrers(client, repo, subject.digest, [artifact], store);
  return true;
}

/**
 * Takes the scan attached to the cached manifest `subject` into the store, as the scan of
 * `diffIds`; false when the cache has none, or one of another chain or scan version.
 */
export async function pullCachedScan(client: RegistryClient, repo: Reference, subject: Digest, store: Store, diffIds: readonly Digest[]): Promise<boolean> {
  const path = store.layout.scan(scanKey(diffIds));
  const referrer = (await listReferrers(client, repo, subject)).find((d) => d.artifactType === SCAN_MEDIA_TYPE);
  if (!referrer) return false;
  const r: Reference = { registry: repo.registry, repository: repo.repository };
  const manifest = JSON.parse(Buffer.from((await fetchManifest(client, r, referrer.digest)).bytes).toString("utf8")) as ImageManifest;
  const layer = manifest.layers?.[0];
  if (!layer || layer.mediaType !== SCAN_MEDIA_TYPE || layer.size > MAX_SCAN_BYTES) return false;
  await fetchBlobToStore(client, r, layer, store);
  const chunks: Buffer[] = [];
  for await (const c of store.openBlob(layer.digest) as AsyncIterable<Buffer>) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  let scan: { version?: unknown; layers?: unknown };
  try {
    scan = JSON.parse(bytes.toString("utf8")) as typeof scan;
  } catch {
    return false;
  }
  if (scan.version !== SCAN_VERSION || JSON.stringify(scan.layers) !== JSON.stringify(diffIds)) return false;
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, bytes, store.layout.tmpDir);
  return true;
}
