// The one place a layer's compression is decided and its decompressor made: from the layer's media
// type when it has one (pulled and oci() layers), else from the stream's first bytes (tarball()
// sources). A new compression is one more case here.
import { spawnSync } from "node:child_process";
import type { Duplex } from "node:stream";
import { createGunzip } from "node:zlib";
import { UserError } from "@mstage/core";
import { MediaType, isGzipLayerType } from "../oci/types.ts";
import { zstdDecompressor } from "../oci/zstd.ts";

export type LayerCompression = "none" | "gzip" | "zstd";

/** The compression a layer media type says, or null for a type that is not a layer tar. */
export function compressionOfMediaType(mediaType: string): LayerCompression | null {
  if (isGzipLayerType(mediaType)) return "gzip";
  if (mediaType === MediaType.ociLayerZstd) return "zstd";
  if (mediaType === MediaType.ociLayer || mediaType === "application/vnd.docker.image.rootfs.diff.tar") return "none";
  return null;
}

/** The compression the first bytes of a stream show (gzip 1f 8b, zstd 28 b5 2f fd), else a plain tar. */
export function sniffCompression(head: Uint8Array): LayerCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return "none";
}

let zstdRuns: boolean | undefined;

/** Refuses, before any byte is fetched, a compression this machine cannot unpack: zstd needs Debian's `zstd`. */
export function checkUnpackable(compression: LayerCompression, what: string): void {
  if (compression !== "zstd") return;
  zstdRuns ??= spawnSync("zstd", ["--version"], { stdio: "ignore" }).status === 0;
  if (!zstdRuns) throw new UserError(`${what} has zstd-compressed layers, and this machine has no zstd to unpack them: install it with \`apt-get install zstd\``);
}

/** A stream turning the compressed bytes into the tar, or null when the layer is a plain tar. */
export function decompressor(compression: LayerCompression, what: string): Duplex | null {
  switch (compression) {
    case "none":
      return null;
    case "gzip":
      // 1 MiB of tar per output chunk: each chunk costs a callback into JS, a stream push and an
      // allocation, and at 256 KiB those were 0.5 s of the 970 MB Go base's extraction.
      return createGunzip({ chunkSize: 1 << 20 });
    case "zstd":
      checkUnpackable(compression, what);
      return zstdDecompressor();
  }
}
