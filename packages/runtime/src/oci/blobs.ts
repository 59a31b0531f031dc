// What the OCI writers need from the content-addressed store. `Store` (store/) satisfies it; the
// writers depend on this shape only, so they stay testable on their own.
import type { Readable } from "node:stream";
import type { Digest } from "./digest.ts";

export interface OciBlobStore {
  /** Path of a blob that exists, for hard-linking into outputs. */
  blobPath(d: Digest): string;
  hasBlob(d: Digest): Promise<boolean> | boolean;
  openBlob(d: Digest): Readable;
  /** Atomic; verifies `expected`; a blob already present is not written again. */
  writeBlob(source: Readable | Uint8Array, expected?: Digest): Promise<{ digest: Digest; size: number }>;
  /** True for a blob this process wrote and hashed as it wrote it: an output copies it without hashing it again. */
  writtenHere?(d: Digest): boolean;
}

/**
 * Turns an uncompressed layer (by diff-id) into its compressed blob in the store: store's
 * `compressLayer`. `mediaType` says how it is compressed (default: gzip).
 */
export type LayerCompressor = (diffId: Digest) => Promise<{ digest: Digest; size: number; mediaType?: string }>;
