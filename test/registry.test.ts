// The registry client against a real docker-registry on loopback: push, pull back, byte-compare,
// mounts, chunked uploads, platform selection, and what skopeo sees.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { RegistryClient, parseDigest, pullImage, pushImage, pushImages, resolveDigest, type PullProgress, type PushProgress } from "@mstage/runtime";
import { DirBlobSink, makeIndex, makeTestImage, pushArgs, registrySuite, registryUnavailable, type TestImage } from "./helpers/registry.ts";

const unavailable = registryUnavailable();

function source(img: TestImage) {
  return { openBlob: (d: string) => Readable.from([img.blobs.get(d)!]) };
}


function skopeoInspect(ref: string, raw = false): unknown {
  const r = spawnSync("skopeo", ["inspect", ...(raw ? ["--raw"] : []), "--tls-verify=false", `docker://${ref}`], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe("registry client against docker-registry", { skip: unavailable }, () => {
  const img = makeTestImage({ extraLayers: [200_000], label: "first" });
  const client = new RegistryClient();
  const suite = registrySuite({ prefix: "mstage-regtest-", client });

  test("a pushed image is what skopeo inspects, and pulls back byte for byte", async () => {
    const ref = `${suite.reg.host}/test/busybox:1.0`;
    const pushed = await pushImage({ ...pushArgs(img, ref), client });
    assert.equal(pushed.digest, img.manifest.digest);
    assert.deepEqual(pushed.blobs, { present: 0, mounted: 0, uploaded: 3 });

    const inspected = skopeoInspect(ref) as { Digest: string; Labels: Record<string, string>; Layers: string[] };
    assert.equal(inspected.Digest, img.manifest.digest);
    assert.equal(inspected.Labels["test.label"], "first");
    assert.deepEqual(inspected.Layers, img.layers.map((l) => l.digest));

    const sink = new DirBlobSink(join(suite.tmp, "pull1"));
    const pulled = await pullImage(ref, { store: sink, client, platform: "linux/amd64" });
    assert.equal(pulled.manifestDigest, img.manifest.digest);
    assert.equal(pulled.resolvedDigest, img.manifest.digest);
    assert.equal(pulled.ref.digest, img.manifest.digest);
    assert.deepEqual(pulled.layers.map((l) => l.diffId), img.layers.map((l) => l.diffId));
    assert.deepEqual(pulled.config.config?.Cmd, ["/bin/sh"]);
    for (const l of img.layers) assert.ok(sink.read(l.digest).equals(l.bytes), `layer ${l.digest} differs`);
    assert.ok(sink.read(img.config.digest).equals(img.config.bytes));
    assert.ok(sink.read(img.manifest.digest).equals(img.manifest.bytes));
  });

  test("pulling again skips blobs already in the store", async () => {
    const sink = new DirBlobSink(join(suite.tmp, "pull1"));
    const events: PullProgress[] = [];
    await pullImage(`${suite.reg.host}/test/busybox:1.0`, { store: sink, client, onProgress: (e) => events.push(e) });
    const statuses = events.filter((e) => e.kind === "blob").map((e) => (e as { status: string }).status);
    assert.deepEqual(statuses, ["present", "present"]);
  });

  test("pushing again uploads nothing; a sibling repository gets its blobs by cross-repo mount", async () => {
    const again = await pushImage({ ...pushArgs(img, `${suite.reg.host}/test/busybox:1.0`), client });
    assert.deepEqual(again.blobs, { present: 3, mounted: 0, uploaded: 0 });
    const events: PushProgress[] = [];
    const mounted = await pushImage({ ...pushArgs(img, `${suite.reg.host}/other/copy:latest`), client, mountFrom: ["test/busybox"], onProgress: (e) => events.push(e) });
    assert.deepEqual(mounted.blobs, { present: 0, mounted: 3, uploaded: 0 });
    assert.ok(events.some((e) => e.kind === "manifest" && e.digest === img.manifest.digest));
    assert.equal((skopeoInspect(`${suite.reg.host}/other/copy:latest`) as { Digest: string }).Digest, img.manifest.digest);
  });

  test("chunked uploads store the same blobs as monolithic ones", async () => {
    const other = makeTestImage({ extraLayers: [150_000, 10], label: "chunked" });
    const res = await pushImage({ ...pushArgs(other, `${suite.reg.host}/test/chunked:1`), client, chunkSize: 64 * 1024 });
    // Blobs in other repositories do not count without a mount: all four are uploaded.
    assert.equal(res.blobs.uploaded, 4);
    const sink = new DirBlobSink(join(suite.tmp, "chunked"));
    const pulled = await pullImage(`${suite.reg.host}/test/chunked:1`, { store: sink, client });
    for (const l of other.layers) assert.ok(sink.read(l.digest).equals(l.bytes));
    assert.equal(pulled.layers.length, 3);
  });

  test("resolveDigest follows the tag when it moves, and a pinned reference stays pinned", async () => {
    const ref = `${suite.reg.host}/test/moving:stable`;
    await pushImage({ ...pushArgs(img, ref), client });
    assert.equal(await resolveDigest(ref, { client }), img.manifest.digest);
    const next = makeTestImage({ label: "second" });
    await pushImage({ ...pushArgs(next, ref), client });
    assert.equal(await resolveDigest(ref, { client }), next.manifest.digest);
    assert.equal(await resolveDigest(`${ref}@${img.manifest.digest}`, { client }), img.manifest.digest);
    const sink = new DirBlobSink(join(suite.tmp, "pinned"));
    const old = await pullImage(`${ref}@${img.manifest.digest}`, { store: sink, client });
    assert.equal(old.config.config?.Labels?.["test.label"], "first");
  });

  test("an index is resolved to the image for the requested platform", async () => {
    const amd = makeTestImage({ label: "amd64" });
    const arm = makeTestImage({ label: "arm64" });
    const repo = `${suite.reg.host}/test/multi`;
    await pushImage({ ...pushArgs(amd, `${repo}@${amd.manifest.digest}`), client });
    await pushImage({ ...pushArgs(arm, `${repo}@${arm.manifest.digest}`), client });
    const index = makeIndex([
      { digest: amd.manifest.digest, size: amd.manifest.bytes.length, platform: { os: "linux", architecture: "amd64" } },
      { digest: arm.manifest.digest, size: arm.manifest.bytes.length, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
    ]);
    const indexPush = await pushImage({
      ref: `${repo}:1`,
      manifest: { bytes: index, mediaType: "application/vnd.oci.image.index.v1+json" },
      config: { digest: parseDigest(amd.config.digest), size: amd.config.size },
      layers: [],
      source: source(amd),
      client,
    });
    const sink = new DirBlobSink(join(suite.tmp, "multi"));
    const a = await pullImage(`${repo}:1`, { store: sink, client, platform: "linux/arm64" });
    assert.equal(a.manifestDigest, arm.manifest.digest);
    assert.equal(a.resolvedDigest, indexPush.digest);
    assert.equal(a.config.config?.Labels?.["test.label"], "arm64");
    const b = await pullImage(`${repo}:1`, { store: sink, client, platform: "linux/amd64" });
    assert.equal(b.manifestDigest, amd.manifest.digest);
    assert.equal(await resolveDigest(`${repo}:1`, { client }), indexPush.digest);
    await assert.rejects(pullImage(`${repo}:1`, { store: sink, client, platform: "linux/s390x" }), /has no image for platform linux\/s390x; available: linux\/amd64, linux\/arm64/);
  });

  test("pushImages sends every image to every tag, mounting blobs from earlier tags and the base's repository", async () => {
    const built = makeTestImage({ extraLayers: [50_000], label: "built" });
    const sink = new DirBlobSink(join(suite.tmp, "built"));
    for (const [d, bytes] of built.blobs) await sink.writeBlob(bytes, d);
    await sink.writeBlob(built.manifest.bytes, built.manifest.digest);
    const manifest = JSON.parse(built.manifest.bytes.toString("utf8"));
    const image = {
      manifest,
      descriptor: { mediaType: built.manifest.mediaType, digest: parseDigest(built.manifest.digest), size: built.manifest.bytes.length },
      config: JSON.parse(built.config.bytes.toString("utf8")),
      configDescriptor: manifest.config,
      layers: manifest.layers.map((d: { digest: string }, i: number) => ({ diffId: parseDigest(built.layers[i]!.diffId), descriptor: d })),
    };
    const pushed = await pushImages([{ tags: [`${suite.reg.host}/app/one:1.0`, `${suite.reg.host}/app/one:latest`, `${suite.reg.host}/app/two:1.0`], image }], { source: sink, client });
    assert.deepEqual(pushed.map((p) => [p.ref, p.digest]), [
      [`${suite.reg.host}/app/one:1.0`, built.manifest.digest],
      [`${suite.reg.host}/app/one:latest`, built.manifest.digest],
      [`${suite.reg.host}/app/two:1.0`, built.manifest.digest],
    ]);
    assert.deepEqual(pushed.map((p) => p.blobs), [
      { present: 0, mounted: 0, uploaded: 3 },
      { present: 3, mounted: 0, uploaded: 0 },
      { present: 0, mounted: 3, uploaded: 0 },
    ]);
    assert.equal((skopeoInspect(`${suite.reg.host}/app/two:1.0`) as { Digest: string }).Digest, built.manifest.digest);

    // A new image on that base (named in its manifest annotations) gets the shared blobs by mount.
    const derived = { ...manifest, annotations: { "org.opencontainers.image.base.name": `${suite.reg.host}/app/one:1.0` } };
    const bytes = Buffer.from(JSON.stringify(derived));
    const { digest } = await sink.writeBlob(bytes);
    const onBase = await pushImages(
      [{ tags: [`${suite.reg.host}/app/three:1`], image: { ...image, manifest: derived, descriptor: { ...image.descriptor, digest, size: bytes.length } } }],
      { source: sink, client },
    );
    assert.deepEqual(onBase[0]!.blobs, { present: 0, mounted: 3, uploaded: 0 });
    assert.equal(onBase[0]!.digest, digest);
    await assert.rejects(pushImages([{ tags: ["Bad:Tag"], image }], { source: sink, client }), /must be lowercase/);
  });

  test("a missing tag or repository fails with 'not found: repository or tag'", async () => {
    const sink = new DirBlobSink(join(suite.tmp, "missing"));
    await assert.rejects(pullImage(`${suite.reg.host}/test/busybox:nope`, { store: sink, client }), (e: Error) => {
      assert.equal(e.name, "RegistryError");
      assert.match(e.message, new RegExp(`${suite.reg.host}/test/busybox:nope not found: repository or tag`));
      return true;
    });
    await assert.rejects(resolveDigest(`${suite.reg.host}/no/such:1`, { client }), /not found: repository or tag/);
  });

  test("plain HTTP is refused for a non-loopback host unless it is given as insecure", async (t) => {
    const ip = Object.values(networkInterfaces()).flat().find((i) => i && i.family === "IPv4" && !i.internal)?.address;
    if (!ip) return t.skip("this machine has no non-loopback IPv4 address to serve plain HTTP on");
    const server = createServer((req, res) => {
      // Just enough of a registry: /v2/ and one manifest.
      if (req.url === "/v2/") res.writeHead(200).end("{}");
      else res.writeHead(200, { "content-type": img.manifest.mediaType, "docker-content-digest": img.manifest.digest }).end(req.method === "HEAD" ? undefined : img.manifest.bytes);
    });
    await new Promise<void>((r) => server.listen(0, ip, () => r()));
    const host = `${ip}:${(server.address() as { port: number }).port}`;
    const strict = new RegistryClient({ retries: 0 });
    const lenient = new RegistryClient({ retries: 0, insecure: [host] });
    try {
      await assert.rejects(resolveDigest(`${host}/x:1`, { client: strict }), new RegExp(`registry ${host} does not answer HTTPS \\(.*\\); if it is a plain-HTTP registry you trust, allow it with --insecure-registry ${host}`));
      assert.equal(await resolveDigest(`${host}/x:1`, { client: lenient }), img.manifest.digest);
    } finally {
      await strict.close();
      await lenient.close();
      server.close();
    }
  });

  test("a registry that is not running fails fast with a clear error", async () => {
    const c = new RegistryClient({ retries: 1, backoffMs: 10 });
    try {
      await assert.rejects(resolveDigest("127.0.0.1:1/x:1", { client: c }), /cannot connect to registry 127\.0\.0\.1:1/);
    } finally {
      await c.close();
    }
  });
});
