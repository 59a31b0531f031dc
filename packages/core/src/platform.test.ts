import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePlatform, selectPlatform } from "./platform.ts";

test("platform selection picks the matching entry and lists the others when none matches", () => {
  const entries = [
    { platform: { os: "linux", architecture: "amd64" }, id: 1 },
    { platform: { os: "linux", architecture: "arm", variant: "v7" }, id: 2 },
    { platform: { os: "linux", architecture: "arm64", variant: "v8" }, id: 3 },
    { platform: { os: "unknown", architecture: "unknown" }, id: 4 },
  ];
  assert.equal(selectPlatform(entries, parsePlatform("linux/amd64"), "x").id, 1);
  assert.equal(selectPlatform(entries, parsePlatform("linux/aarch64"), "x").id, 3);
  assert.equal(selectPlatform(entries, parsePlatform("linux/arm/v7"), "x").id, 2);
  assert.throws(() => selectPlatform(entries, parsePlatform("linux/s390x"), "img"), /img has no image for platform linux\/s390x; available: linux\/amd64, linux\/arm\/v7, linux\/arm64\/v8 \(/);
  assert.throws(() => parsePlatform("linux"), /os\/arch/);
});
