// Manifests and indexes as registries serve them: OCI image-spec and Docker schema 2, checked just
// enough to be walked safely (digests parsed, sizes numbers) before anything is fetched by them.
import { RegistryError } from "@mstage/core";
import { parseDigest, sha256Digest, type Digest } from "../oci/digest.ts";
import { MediaType, isIndexType, type Descriptor, type ImageIndex, type ImageManifest } from "../oci/types.ts";

/** What we accept for GET/HEAD of a manifest, most preferred first. */
export const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].join(", ");

const LAYER_TYPES = new Set<string>([
  MediaType.ociLayer, MediaType.ociLayerGzip, MediaType.ociLayerZstd, MediaType.dockerLayerGzip,
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", MediaType.dockerForeignLayerGzip,
]);

export type ParsedManifest = { kind: "image"; manifest: ImageManifest } | { kind: "index"; index: ImageIndex };

/**
 * Parses manifest bytes; the media type comes from the document when it names one, else from the
 * Content-Type header. `where` names the manifest in errors.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined, where: string): ParsedManifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString("utf8")) as Record<string, unknown>;
  } catch {
    throw invalid(where, "is not JSON");
  }
  if (doc.schemaVersion === 1) throw invalid(where, "is a Docker schema 1 manifest, which is not supported; push the image again with a current tool");
  if (doc.schemaVersion !== 2) throw invalid(where, `has schemaVersion ${JSON.stringify(doc.schemaVersion)}, want 2`);
  const mediaType = typeof doc.mediaType === "string" ? doc.mediaType : (contentType ?? "").split(";")[0]!.trim();
  const looksIndex = Array.isArray(doc.manifests);
  if (isIndexType(mediaType) || (looksIndex && !doc.config)) {
    const manifests = (doc.manifests as unknown[] | undefined ?? []).map((d, i) => descriptor(d, where, `manifests[${i}]`));
    return { kind: "index", index: { ...(doc as object), schemaVersion: 2, mediaType: mediaType || MediaType.ociIndex, manifests } as ImageIndex };
  }
  if (!doc.config || !Array.isArray(doc.layers)) throw invalid(where, `has media type ${JSON.stringify(mediaType)} but no config and layers`);
  const config = descriptor(doc.config, where, "config");
  const layers = (doc.layers as unknown[]).map((d, i) => descriptor(d, where, `layers[${i}]`));
  for (const [i, l] of layers.entries()) {
    if (!LAYER_TYPES.has(l.mediaType)) throw invalid(where, `layers[${i}] has media type ${JSON.stringify(l.mediaType)}, which is not an image layer mstage can unpack`);
  }
  return { kind: "image", manifest: { ...(doc as object), schemaVersion: 2, mediaType: mediaType || MediaType.ociManifest, config, layers } as ImageManifest };
}

function descriptor(d: unknown, where: string, path: string): Descriptor {
  const o = d as Record<string, unknown> | null;
  if (!o || typeof o !== "object") throw invalid(where, `${path} is not an object`);
  if (typeof o.mediaType !== "string") throw invalid(where, `${path}.mediaType is missing`);
  if (typeof o.size !== "number" || !Number.isSafeInteger(o.size) || o.size < 0) throw invalid(where, `${path}.size is not a size`);
  let digest: Digest;
  try {
    digest = parseDigest(String(o.digest));
  } catch {
    throw invalid(where, `${path}.digest ${JSON.stringify(o.digest)} is not a sha256 digest`);
  }
  return { ...(o as object), mediaType: o.mediaType, digest, size: o.size } as Descriptor;
}

function invalid(where: string, why: string): RegistryError {
  return new RegistryError(`${where} ${why}`, undefined, "GET", where, false);
}

/** The digest of manifest bytes as served (the bytes are the identity, never a re-encoding). */
export function manifestDigest(bytes: Uint8Array): Digest {
  return sha256Digest(bytes);
}
