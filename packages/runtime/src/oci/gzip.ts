// Deterministic gzip of a store blob: zlib's deflate with a fixed header (no name, mtime 0, OS byte
// "unknown" as Go's compress/gzip writes it), so the same layer gives the same compressed digest on
// every machine running the same zlib. The deflate bytes are those of Node's bundled zlib
// (process.versions.zlib, 1.3.1-e00f703 in Node 20.20): a Node with another zlib may compress differently.
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip, constants } from "node:zlib";
import type { OciBlobStore } from "./blobs.ts";
import type { Digest } from "./digest.ts";

export const GZIP_LEVEL = constants.Z_DEFAULT_COMPRESSION;

/** Gzips the blob `diffId` into a new store blob; returns the compressed blob's digest and size. */
export async function gzipBlob(
  store: OciBlobStore,
  diffId: Digest,
  options: { level?: number } = {},
): Promise<{ digest: Digest; size: number }> {
  if (!(await store.hasBlob(diffId))) {
    throw new Error(`layer ${diffId} is not in the store uncompressed, so it cannot be gzipped here`);
  }
  const gzip = createGzip({ level: options.level ?? GZIP_LEVEL });
  const fixed = fixGzipHeader();
  const written = store.writeBlob(fixed);
  try {
    await Promise.all([pipeline(store.openBlob(diffId), gzip, fixed), written]);
  } catch (e) {
    fixed.destroy();
    throw e;
  }
  return written;
}

/**
 * Rewrites the 10-byte gzip header's XFL and OS bytes. zlib fills OS from the build platform
 * (3 on Linux, 19 on macOS), which would make a digest depend on where it was built.
 */
export function fixGzipHeader(): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      if (seen < 10) {
        const c = Buffer.from(chunk);
        for (let i = 0; i < c.length && seen + i < 10; i++) {
          if (seen + i === 8) c[i] = 0; // XFL: no claim about the level used
          if (seen + i === 9) c[i] = 255; // OS: unknown
        }
        seen += c.length;
        done(null, c);
        return;
      }
      done(null, chunk);
    },
  });
}
