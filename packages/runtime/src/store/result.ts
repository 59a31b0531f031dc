// What the store remembers about a built stage: its whole layer chain and the image config after it.
import type { Digest } from "../oci/digest.ts";
import type { HistoryEntry, ImageConfig } from "../oci/types.ts";

/** One layer of a chain, by its diff-id (the digest of the uncompressed tar). */
export interface LayerRef {
  diffId: Digest;
  /** Size of the uncompressed tar in bytes. */
  size: number;
}

/** The record kept at results/<hex of key>.json. */
export interface StageResult {
  /** The stage key (sha256:<hex>) this result was built for. */
  key: string;
  /** The whole chain, base first. */
  layers: LayerRef[];
  /** Runtime config after the stage, before config-only fields. */
  config: ImageConfig;
  history: HistoryEntry[];
  /** RFC 3339 time of the build. */
  created: string;
  /** The stage's name, shown by `mstage ls`. */
  stage?: string;
  /** The project directory that built it, shown by `mstage ls`. */
  project?: string;
  /** Other blobs this result needs kept (e.g. a pulled base's manifest and config); gc keeps them. */
  blobs?: Digest[];
}
