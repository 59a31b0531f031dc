import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalBlob, canonicalJson } from "./canonical.ts";

test("canonical JSON sorts keys at every depth and has no whitespace", () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: "x" } }), '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
});

test("canonical JSON gives the same bytes whatever order the keys were set in", () => {
  const one = { schemaVersion: 2, config: { size: 1, digest: "d" }, layers: [] };
  const two = { layers: [], config: { digest: "d", size: 1 }, schemaVersion: 2 };
  assert.deepEqual(canonicalBlob(one), canonicalBlob(two));
  assert.match(canonicalBlob(one).digest, /^sha256:[0-9a-f]{64}$/);
});

test("canonical JSON drops undefined members and escapes strings like JSON.stringify", () => {
  assert.equal(canonicalJson({ a: undefined, b: "é\n\"" }), '{"b":"é\\n\\""}');
  assert.equal(canonicalJson([undefined, null]), "[null,null]");
});

test("canonical JSON refuses values that have no stable encoding", () => {
  assert.throws(() => canonicalJson({ n: NaN }), /\$\.n is NaN/);
  assert.throws(() => canonicalJson({ d: new Date(0) }), /\$\.d is a Date/);
  assert.throws(() => canonicalJson({ f: () => 1 }), /\$\.f is a function/);
});
