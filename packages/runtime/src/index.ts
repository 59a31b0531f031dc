// @mstage/runtime: store, sandbox, layers, OCI layout, registry client and builder.
// Each area adds its own export lines here; keep them grouped by folder.

// oci/
export { parseDigest, isDigest, digestHex, sha256Digest, digestOf } from "./oci/digest.ts";
export type { Digest } from "./oci/digest.ts";
