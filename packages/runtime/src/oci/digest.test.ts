import { test } from "node:test";
import assert from "node:assert/strict";
import { UserError } from "@mstage/core";
import { digestHex, parseDigest, sha256Digest } from "./digest.ts";

test("a malformed digest from outside (a foreign layout, a registry) is the user's error, not a bug", () => {
  const d = sha256Digest("x");
  assert.equal(parseDigest(d), d);
  assert.equal(digestHex(d).length, 64);
  for (const bad of ["sha256:../../etc/passwd", "sha512:" + "a".repeat(128), "sha256:" + "A".repeat(64), ""]) {
    assert.throws(() => parseDigest(bad), (e: unknown) => e instanceof UserError && /invalid digest/.test(e.message), bad);
  }
});
