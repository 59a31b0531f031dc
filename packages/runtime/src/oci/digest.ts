// A content digest ("sha256:<64 hex>"). Only parseDigest() and the hashing helpers make one, so a
// Digest in hand is always well-formed and safe to use as a file name.
import { createHash, type Hash } from "node:crypto";

declare const digestBrand: unique symbol;
export type Digest = string & { readonly [digestBrand]: true };

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** Checks a digest that came from outside (a manifest, a registry header, a file name). */
export function parseDigest(s: string): Digest {
  if (!DIGEST_RE.test(s)) throw new Error(`invalid digest ${JSON.stringify(s)}: want sha256:<64 hex digits>`);
  return s as Digest;
}

export function isDigest(s: unknown): s is Digest {
  return typeof s === "string" && DIGEST_RE.test(s);
}

/** The 64 hex digits, for paths like blobs/sha256/<hex>. */
export function digestHex(d: Digest): string {
  return d.slice("sha256:".length);
}

export function sha256Digest(data: string | Uint8Array): Digest {
  return ("sha256:" + createHash("sha256").update(data).digest("hex")) as Digest;
}

/** Finishes a running sha256 as a Digest. */
export function digestOf(hash: Hash): Digest {
  return ("sha256:" + hash.digest("hex")) as Digest;
}
