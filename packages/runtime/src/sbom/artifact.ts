// OCI 1.1 artifact manifests that refer to an image (image-spec manifest.md, "subject" and
// "artifactType"): an empty config, the document as the one layer. Their blobs go to the store,
// so the layout writer and the push code handle them like any image's blobs.
import { canonicalBlob } from "../oci/canonical.ts";
import type { OciBlobStore } from "../oci/blobs.ts";
import { sha256Digest } from "../oci/digest.ts";
import { Annotation, MediaType, type Descriptor } from "../oci/types.ts";

export const EMPTY_CONFIG_MEDIA_TYPE = "application/vnd.oci.empty.v1+json";
/** Marks the referrers mstage attaches, so a rebuild replaces its own and no one else's. */
export const ATTESTATION_ANNOTATION = "dev.mstage.attestation";

/** "scan": a layer chain's package scan, attached to a cached stage (cache-scan.ts), not to an output. */
export type AttestationKind = "sbom" | "provenance" | "scan";

export interface Artifact {
  kind: AttestationKind;
  artifactType: string;
  /** The manifest's descriptor, with artifactType and the mstage annotation, as indexes list it. */
  descriptor: Descriptor & { artifactType: string };
  manifestBytes: Buffer;
  config: Descriptor;
  layers: Descriptor[];
}

export async function makeArtifact(
  store: OciBlobStore,
  o: { kind: AttestationKind; artifactType: string; document: Uint8Array; subject: Descriptor; created: string },
): Promise<Artifact> {
  const emptyBytes = Buffer.from("{}");
  const config: Descriptor = { mediaType: EMPTY_CONFIG_MEDIA_TYPE, digest: sha256Digest(emptyBytes), size: emptyBytes.length };
  await store.writeBlob(emptyBytes, config.digest);
  const doc = Buffer.from(o.document);
  const layer: Descriptor = { mediaType: o.artifactType, digest: sha256Digest(doc), size: doc.length };
  await store.writeBlob(doc, layer.digest);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: o.artifactType,
    config: { ...config, data: emptyBytes.toString("base64") },
    layers: [layer],
    subject: { mediaType: o.subject.mediaType, digest: o.subject.digest, size: o.subject.size },
    annotations: { [Annotation.created]: o.created, [ATTESTATION_ANNOTATION]: o.kind },
  };
  const blob = canonicalBlob(manifest);
  await store.writeBlob(blob.bytes, blob.digest);
  return {
    kind: o.kind,
    artifactType: o.artifactType,
    descriptor: { mediaType: MediaType.ociManifest, digest: blob.digest, size: blob.size, artifactType: o.artifactType, annotations: { [ATTESTATION_ANNOTATION]: o.kind } },
    manifestBytes: Buffer.from(blob.bytes),
    config,
    layers: [layer],
  };
}
