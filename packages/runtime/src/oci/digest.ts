// A content digest ("sha256:<64 hex>"). Only parseDigest() and the hashing helpers make one, so a
// Digest in hand is always well-formed and safe to use as a file name.
import { createHash, type Hash } from "node:crypto";
import { UserError, isSha256Digest } from "@mstage/core";

declare const digestBrand: unique symbol;
export type Digest = string & { readonly [digestBrand]: true };

/** Checks a digest that came from outside (a manifest, a registry header, a file name). */
export function parseDigest(s: string): Digest {
  // A foreign layout, registry or file can hand over anything: a user's problem, not a bug.
  if (!isSha256Digest(s)) throw new UserError(`invalid digest ${JSON.stringify(s)}: want sha256:<64 hex digits>`);
  return s as Digest;
}

export function isDigest(s: unknown): s is Digest {
  return isSha256Digest(s);
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
