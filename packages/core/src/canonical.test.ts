import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalJson, sameCanonical, sha256Hex } from "./canonical.ts";

test("canonical JSON sorts keys at every depth and has no whitespace", () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: "x" } }), '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
});

test("canonical JSON gives the same bytes whatever order the keys were set in", () => {
  const one = { schemaVersion: 2, config: { size: 1, digest: "d" }, layers: [] };
  const two = { layers: [], config: { digest: "d", size: 1 }, schemaVersion: 2 };
  assert.equal(canonicalJson(one), canonicalJson(two));
  assert.match(sha256Hex(canonicalJson(one)), /^[0-9a-f]{64}$/);
});

test("canonical JSON drops undefined members and escapes strings like JSON.stringify", () => {
  assert.equal(canonicalJson({ a: undefined, b: "é\n\"" }), '{"b":"é\\n\\""}');
  assert.equal(canonicalJson([undefined, null]), "[null,null]");
});

test("canonical JSON refuses values that have no stable encoding", () => {
  assert.throws(() => canonicalJson({ n: NaN }), /\$\.n is NaN/);
  assert.throws(() => canonicalJson({ n: Infinity }), /\$\.n is Infinity/);
  assert.throws(() => canonicalJson({ d: new Date(0) }), /\$\.d is a Date/);
  assert.throws(() => canonicalJson({ m: new Map() }), /\$\.m is a Map/);
  assert.throws(() => canonicalJson({ f: () => 1 }), /\$\.f is a function/);
  assert.throws(() => canonicalJson([1, 2n]), /\$\[1\] is a bigint/);
  assert.throws(() => canonicalJson(undefined), /\$ is a undefined/);
});

test("sameCanonical compares values by their encoding, a missing value as null", () => {
  assert.equal(sameCanonical({ a: 1, b: [2] }, { b: [2], a: 1 }), true);
  assert.equal(sameCanonical(undefined, null), true);
  assert.equal(sameCanonical(undefined, 0), false);
  assert.equal(sameCanonical({ a: undefined }, {}), true);
});

test("sha256Hex hashes strings as UTF-8, the same as the bytes", () => {
  assert.equal(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(sha256Hex("é"), sha256Hex(Buffer.from("é", "utf8")));
});
