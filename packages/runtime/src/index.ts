// @mstage/runtime: store, sandbox, layers, OCI layout, registry client and builder.
// Each area adds its own export lines here; keep them grouped by folder.

// oci/
export { parseDigest, isDigest, digestHex, sha256Digest, digestOf } from "./oci/digest.ts";
export type { Digest } from "./oci/digest.ts";

// build/
export { runGraph } from "./build/scheduler.ts";
export type { Task } from "./build/scheduler.ts";
export { LineSplitter } from "./build/events.ts";
export type { BuildEvent, BuildEventHandler, StageOutcome } from "./build/events.ts";
