// Resilience: a suite.proxy in front of a real docker-registry corrupts a blob, answers 503, 429 with
// Retry-After, or drops connections; the client must fail cleanly or retry, as the case demands.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient, Store, parseDigest, pullImage, pushImage } from "@mstage/runtime";
import { DirBlobSink, makeTestImage, pushArgs, registrySuite, registryUnavailable, type TestImage } from "./helpers/registry.ts";

const unavailable = registryUnavailable();

describe("registry faults through a suite.proxy", { skip: unavailable }, () => {
  const img = makeTestImage({ extraLayers: [300_000], label: "faults" });
  const target = () => img.layers[1]!.digest;
  const notes: string[] = [];
  const client = new RegistryClient({ backoffMs: 20, onNote: (n) => notes.push(n) });

  const suite = registrySuite({ prefix: "mstage-faults-", client, proxy: true, push: { "f/img:1": img } });

  test("a corrupted blob fails the pull naming blob and registry, and nothing of it is stored", async () => {
    suite.proxy.decide = (req) => (req.url?.endsWith(`/blobs/${target()}`) && req.method === "GET" ? { kind: "corrupt" } : { kind: "pass" });
    const sink = new DirBlobSink(join(suite.tmp, "corrupt"));
    await assert.rejects(pullImage(`${suite.proxy.host}/f/img:1`, { store: sink, client }), (e: Error) => {
      assert.equal(e.name, "RegistryError");
      assert.match(e.message, new RegExp(`blob ${target()} from ${suite.proxy.host}/f/img does not match its digest`));
      return true;
    });
    assert.ok(!sink.hasBlob(target()), "the corrupt blob was kept");
    assert.ok(!sink.list().includes(img.manifest.digest.slice(7)), "the manifest was stored for a failed pull");
    assert.equal(suite.proxy.seen.filter((s) => s === `GET /v2/f/img/blobs/${target()}`).length, 1, "a digest mismatch is not retried");
  });

  test("into the real store, a corrupted blob leaves neither the blob nor a temp file behind", async () => {
    suite.proxy.decide = (req) => (req.url?.endsWith(`/blobs/${target()}`) && req.method === "GET" ? { kind: "corrupt" } : { kind: "pass" });
    const store = await Store.open(join(suite.tmp, "store-corrupt"));
    await assert.rejects(pullImage(`${suite.proxy.host}/f/img:1`, { store, client }), (e: Error) => {
      assert.equal(e.name, "RegistryError");
      assert.match(e.message, new RegExp(`blob ${target()} from ${suite.proxy.host}/f/img does not match its digest: received content with digest sha256:`));
      return true;
    });
    assert.equal(store.hasBlob(parseDigest(target())), false);
    assert.deepEqual(readdirSync(join(store.root, "tmp")), []);
    suite.proxy.decide = () => ({ kind: "pass" });
    const pulled = await pullImage(`${suite.proxy.host}/f/img:1`, { store, client });
    assert.equal(store.hasBlob(parseDigest(target())), true);
    assert.equal(pulled.manifestDigest, img.manifest.digest);
  });

  test("extracting while it downloads, a corrupted blob fails naming it and leaves no blob, extracted layer or temp entry", async () => {
    suite.proxy.decide = (req) => (req.url?.endsWith(`/blobs/${target()}`) && req.method === "GET" ? { kind: "corrupt" } : { kind: "pass" });
    const store = await Store.open(join(suite.tmp, "store-extract-corrupt"));
    await assert.rejects(pullImage(`${suite.proxy.host}/f/img:1`, { store, extractTo: store, client }), (e: Error) => {
      assert.equal(e.name, "RegistryError");
      assert.match(e.message, new RegExp(`blob ${target()} from ${suite.proxy.host}/f/img does not match its digest: received content with digest sha256:`));
      return true;
    });
    for (const l of img.layers) {
      assert.equal(store.hasBlob(parseDigest(l.digest)), false, `blob ${l.digest} kept`);
      assert.equal(store.hasLayerDir(parseDigest(l.diffId)), false, `layer ${l.diffId} extracted`);
    }
    assert.deepEqual(readdirSync(join(store.root, "tmp")), []);
    suite.proxy.decide = () => ({ kind: "pass" });
    await pullImage(`${suite.proxy.host}/f/img:1`, { store, extractTo: store, client });
    for (const l of img.layers) assert.equal(store.hasLayerDir(parseDigest(l.diffId)), true, `layer ${l.diffId} not extracted by the pull`);
  });

  test("a layer whose tar does not hash to its config's diff_id fails naming the layer, and nothing of the image is trusted", async () => {
    // The same layers, but the config claims the first layer's diff_id for the second.
    const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
    const doc = JSON.parse(img.config.bytes.toString("utf8"));
    doc.rootfs.diff_ids[1] = doc.rootfs.diff_ids[0];
    const cbytes = Buffer.from(JSON.stringify(doc));
    const config = { digest: sha(cbytes), size: cbytes.length, bytes: cbytes };
    const m = JSON.parse(img.manifest.bytes.toString("utf8"));
    m.config = { ...m.config, digest: config.digest, size: config.size };
    const mbytes = Buffer.from(JSON.stringify(m));
    const lying: TestImage = { manifest: { ...img.manifest, bytes: mbytes, digest: sha(mbytes) }, config, layers: img.layers, blobs: new Map([...img.blobs, [config.digest, cbytes]]) };
    await pushImage({ ...pushArgs(lying, `${suite.reg.host}/f/lying:1`), client });
    suite.proxy.decide = () => ({ kind: "pass" });
    const store = await Store.open(join(suite.tmp, "store-diffid"));
    await assert.rejects(pullImage(`${suite.proxy.host}/f/lying:1`, { store, extractTo: store, client }), (e: Error) => {
      assert.equal(e.name, "RegistryError");
      assert.match(e.message, new RegExp(`layer ${target()} of ${suite.proxy.host}/f/lying: its uncompressed tar hashes to ${img.layers[1]!.diffId}, not to ${img.layers[0]!.diffId}, the diff_id its image config names`));
      return true;
    });
    for (const l of img.layers) {
      assert.equal(store.hasBlob(parseDigest(l.digest)), false, `blob ${l.digest} kept`);
      assert.equal(store.hasLayerDir(parseDigest(l.diffId)), false, `layer ${l.diffId} extracted`);
    }
    assert.deepEqual(readdirSync(join(store.root, "tmp")), []);
  });

  test("503 twice then success: the pull retries and succeeds", async () => {
    let failures = 0;
    suite.proxy.decide = (req) => (req.url?.endsWith(`/blobs/${target()}`) && failures++ < 2 ? { kind: "status", status: 503 } : { kind: "pass" });
    notes.length = 0;
    const sink = new DirBlobSink(join(suite.tmp, "503"));
    const pulled = await pullImage(`${suite.proxy.host}/f/img:1`, { store: sink, client });
    assert.equal(failures, 3);
    assert.ok(sink.read(target()).equals(img.layers[1]!.bytes));
    assert.equal(pulled.manifestDigest, img.manifest.digest);
    assert.equal(notes.filter((n) => /failed GET .* \(503 INJECTED: injected 503\); retrying/.test(n)).length, 2, notes.join("\n"));
  });

  test("429 with Retry-After waits that long before retrying", async () => {
    let limited = 0;
    suite.proxy.decide = (req) => (req.url?.includes("/manifests/") && limited++ < 1 ? { kind: "status", status: 429, headers: { "retry-after": "1" } } : { kind: "pass" });
    const start = Date.now();
    const pulled = await pullImage(`${suite.proxy.host}/f/img:1`, { store: new DirBlobSink(join(suite.tmp, "429")), client });
    const waited = Date.now() - start;
    assert.equal(pulled.manifestDigest, img.manifest.digest);
    assert.ok(waited >= 1000, `retried after ${waited} ms, before Retry-After`);
    assert.ok(waited < 5000, `took ${waited} ms`);
  });

  test("dropped connections, before or in the middle of a body, are retried; persistent 5xx gives up with a clear error", async () => {
    let resets = 0;
    suite.proxy.decide = (req) => (req.url?.endsWith(`/blobs/${target()}`) && resets++ < 1 ? { kind: "reset" } : { kind: "pass" });
    const pulled = await pullImage(`${suite.proxy.host}/f/img:1`, { store: new DirBlobSink(join(suite.tmp, "reset")), client });
    assert.equal(pulled.layers.length, 2);
    assert.equal(resets, 2);

    let truncated = 0;
    suite.proxy.decide = (req) => (req.url?.endsWith(`/blobs/${target()}`) && truncated++ < 1 ? { kind: "truncate" } : { kind: "pass" });
    const sink = new DirBlobSink(join(suite.tmp, "truncated"));
    await pullImage(`${suite.proxy.host}/f/img:1`, { store: sink, client });
    assert.equal(truncated, 2, "a body cut off half way was not fetched again");
    assert.ok(sink.read(target()).equals(img.layers[1]!.bytes));

    suite.proxy.decide = (req) => (req.url?.endsWith(`/blobs/${target()}`) ? { kind: "status", status: 502 } : { kind: "pass" });
    const c = new RegistryClient({ retries: 2, backoffMs: 5 });
    try {
      await assert.rejects(pullImage(`${suite.proxy.host}/f/img:1`, { store: new DirBlobSink(join(suite.tmp, "502")), client: c }), (e: Error & { status?: number; temporary?: boolean }) => {
        assert.match(e.message, new RegExp(`registry ${suite.proxy.host} failed GET http://${suite.proxy.host}/v2/f/img/blobs/${target()} for blob`));
        assert.equal(e.status, 502);
        assert.equal(e.temporary, true);
        return true;
      });
    } finally {
      await c.close();
    }
  });

  test("a registry that stops answering times out with a clear error", async () => {
    suite.proxy.decide = (req) => (req.url?.includes("/manifests/") ? { kind: "hang" } : { kind: "pass" });
    const c = new RegistryClient({ retries: 1, backoffMs: 5, timeoutMs: 300 });
    try {
      await assert.rejects(pullImage(`${suite.proxy.host}/f/img:1`, { store: new DirBlobSink(join(suite.tmp, "hang")), client: c }), /timed out after 300 ms talking to 127\.0\.0\.1:\d+ \(GET .*\/manifests\/1\)/);
    } finally {
      await c.close();
    }
  });

  test("a blob corrupted in the local store fails the push at once, without retries", async () => {
    const bad = makeTestImage({ extraLayers: [20_000], label: "corrupt-local" });
    const store = await Store.open(join(suite.tmp, "store-push"));
    for (const [d, bytes] of bad.blobs) await store.writeBlob(bytes, parseDigest(d));
    const victim = parseDigest(bad.layers[1]!.digest);
    const bytes = readFileSync(store.blobPath(victim));
    bytes[bytes.length >> 1]! ^= 0xff;
    writeFileSync(store.blobPath(victim), bytes);
    suite.proxy.decide = () => ({ kind: "pass" });
    const before = suite.proxy.seen.length;
    await assert.rejects(pushImage({ ...pushArgs(bad, `${suite.proxy.host}/f/corrupt:1`), source: store, client }), (e: Error) => {
      assert.equal(e.name, "DigestMismatchError");
      assert.match(e.message, new RegExp(victim));
      return true;
    });
    const puts = suite.proxy.seen.slice(before).filter((s) => s.startsWith("PUT ") && s.includes("digest=" + encodeURIComponent(victim)));
    assert.equal(puts.length, 1, puts.join("\n"));
  });

  test("uploads through the suite.proxy retry a 503 on the blob PUT, and chunked uploads use PATCH", async () => {
    let failures = 0;
    suite.proxy.decide = (req) => (req.method === "PUT" && req.url?.includes("/blobs/uploads/") && failures++ < 1 ? { kind: "status", status: 503 } : { kind: "pass" });
    const other = makeTestImage({ extraLayers: [100_000], label: "upload" });
    const seenBefore = suite.proxy.seen.length;
    const res = await pushImage({ ...pushArgs(other, `${suite.proxy.host}/f/up:1`), client, chunkSize: 32 * 1024 });
    assert.equal(res.digest, other.manifest.digest);
    const seen = suite.proxy.seen.slice(seenBefore);
    assert.ok(seen.filter((s) => s.startsWith("PATCH ")).length >= 4, seen.join("\n"));
    assert.ok(failures >= 2);
    const back = await pullImage(`${suite.reg.host}/f/up:1`, { store: new DirBlobSink(join(suite.tmp, "up")), client });
    assert.equal(back.manifestDigest, other.manifest.digest);
  });
});
