// An OCI blob from a JSON value: core's canonical encoding as UTF-8 bytes plus its digest, so
// manifests and configs get stable digests on any machine.
import { canonicalJson } from "@mstage/core";
import { sha256Digest, type Digest } from "./digest.ts";

export function canonicalBlob(value: unknown): { bytes: Buffer; digest: Digest; size: number } {
  const bytes = Buffer.from(canonicalJson(value), "utf8");
  return { bytes, digest: sha256Digest(bytes), size: bytes.length };
}
