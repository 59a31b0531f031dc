// The image an attestation describes, as the documents name it.
import type { Digest } from "../oci/digest.ts";

export interface AttestationSubject {
  /** The stage name (the image's first ref). */
  name: string;
  /** The image manifest's digest: the referrers' `subject`. */
  digest: Digest;
  /** e.g. "linux/amd64". */
  platform: string;
  /** Registry or OCI images the image's chain starts from. */
  bases: Array<{ name: string; digest: Digest }>;
  /** RFC 3339 time from SOURCE_DATE_EPOCH: documents made from the same inputs are the same bytes. */
  created: string;
}

/** `pkg:oci/<name>@sha256%3A<hex>`: how SPDX and CycloneDX name an image. */
export function ociPurl(name: string, digest: Digest): string {
  const repo = name.replace(/[:@].*$/, "").split("/").pop() || name;
  return `pkg:oci/${encodeURIComponent(repo)}@${encodeURIComponent(digest)}${repo !== name ? `?repository_url=${encodeURIComponent(name.replace(/[:@][^/]*$/, ""))}` : ""}`;
}
