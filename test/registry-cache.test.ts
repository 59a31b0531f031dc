// The shared build cache in a registry: a stage result pushed by one store is found and pulled by
// another, empty one, with layers that still hash to their diff-ids.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { RegistryCache, RegistryClient, Store, parseCacheRef, parseDigest, type StageResult } from "@mstage/runtime";
import { makeTestImage, registrySuite, registryUnavailable } from "./helpers/registry.ts";

const unavailable = registryUnavailable();
const sha = (b: Uint8Array) => parseDigest("sha256:" + createHash("sha256").update(b).digest("hex"));

describe("registry build cache", { skip: unavailable }, () => {
  const client = new RegistryClient();
  const suite = registrySuite({ prefix: "mstage-cache-", client });

  test("cache references are registry://HOST/REPO without tag or digest", () => {
    assert.deepEqual(parseCacheRef("registry://localhost:5000/cache/app"), { registry: "localhost:5000", repository: "cache/app" });
    assert.deepEqual(parseCacheRef("ghcr.io/o/cache"), { registry: "ghcr.io", repository: "o/cache" });
    assert.throws(() => parseCacheRef("registry://localhost:5000/cache:v1"), /without tag or digest/);
    assert.throws(() => parseCacheRef("s3://bucket/x"), /registry:\/\/HOST\/REPO/);
  });

  test("a result pushed from one store is pulled into an empty one, layers and record intact", async () => {
    const img = makeTestImage();
    const tar = gunzipSync(img.layers[0]!.bytes);
    const a = await Store.open(join(suite.tmp, "a"));
    const { digest: diffId } = await a.writeBlob(tar);
    const key = sha(randomBytes(16));
    const result: StageResult = {
      key,
      layers: [{ diffId, size: tar.length }],
      config: { architecture: "amd64", os: "linux", config: { Cmd: ["/bin/sh"], Env: ["PATH=/bin"] }, rootfs: { type: "layers", diff_ids: [diffId] } },
      history: [{ created: "1970-01-01T00:00:00Z", created_by: "mstage stage build" }],
      created: "1970-01-01T00:00:00Z",
      stage: "build",
      project: "/home/someone/secret-project",
    };
    await a.putResult(key, result);

    const cacheRef = `registry://${suite.reg.host}/cache/app`;
    const writer = new RegistryCache(cacheRef, { client });
    const { digest } = await writer.put(a, result);
    const inspected = JSON.parse(spawnSync("skopeo", ["inspect", "--tls-verify=false", `docker://${suite.reg.host}/cache/app:${key.slice(7)}`], { encoding: "utf8" }).stdout);
    assert.equal(inspected.Digest, digest);
    assert.ok(!JSON.stringify(inspected).includes("secret-project"), "the project path left the machine");
    // Pushing the same result again uploads nothing new and gives the same digest.
    assert.equal((await writer.put(a, result)).digest, digest);

    const b = await Store.open(join(suite.tmp, "b"));
    const reader = new RegistryCache(cacheRef, { client });
    assert.equal(await reader.has(key), true);
    assert.equal(await reader.has(sha(randomBytes(8))), false);
    assert.equal(await reader.fetch(b, sha(randomBytes(8))), null);
    const entry = await reader.fetch(b, key);
    assert.equal(entry?.manifest, digest, "the entry's manifest digest, for its referrers");
    const fetched = entry?.result;
    assert.equal(fetched?.key, key);
    assert.deepEqual(fetched?.layers, result.layers);
    assert.deepEqual(fetched?.config.config?.Cmd, ["/bin/sh"]);
    const stored = await b.getResult(key);
    assert.ok(stored, "the result was not recorded in the second store");
    const gz = b.compressedOf(diffId);
    assert.ok(gz, "the layer's gzip blob was not recorded");
    assert.equal(sha(gunzipSync(await b.readBlob(gz.digest))), diffId);
    assert.equal(b.hasLayer(diffId), true);
  });
});
