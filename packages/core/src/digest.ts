// The one shape of a content digest mstage accepts from outside (files, layouts, registries):
// sha256:<64 lowercase hex>. The runtime's parseDigest() makes its branded Digest by this rule; core
// and the CLI's no-op paths check with it before a digest names a file.
export const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

export function isSha256Digest(s: unknown): s is string {
  return typeof s === "string" && SHA256_DIGEST.test(s);
}
