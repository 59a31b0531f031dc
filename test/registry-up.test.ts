// `mstage up` and `plan` with registries, through the built CLI: an image() base pulled from a real
// docker-registry and pinned in images.lock, --push to tags, --refresh after the tag moves, and a
// second empty store filled from --cache-to/--cache-from instead of running the steps.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient, pullImage, pushImage } from "@mstage/runtime";
import { CLI, DirBlobSink, cliRegistryUnavailable, makeTestImage, pushArgs, registrySuite, type TestImage } from "./helpers/registry.ts";

describe("up and plan with a registry", { skip: cliRegistryUnavailable() }, () => {
  const client = new RegistryClient();
  const base = makeTestImage({ label: "base-v1" });

  const mstage = (args: string[], store = "store-a") => {
    const r = spawnSync(process.execPath, [CLI, ...args, "--store", join(suite.tmp, store)], { cwd: suite.project, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    return { code: r.status, out: r.stdout, err: r.stderr, all: r.stdout + r.stderr };
  };
  const layoutImage = (dir: string, ref: string) => {
    const index = JSON.parse(readFileSync(join(suite.project, dir, "index.json"), "utf8"));
    const desc = index.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.["org.opencontainers.image.ref.name"] === ref);
    assert.ok(desc, `no ${ref} in ${dir}`);
    const manifest = JSON.parse(readFileSync(join(suite.project, dir, "blobs", "sha256", desc.digest.slice(7)), "utf8"));
    return { digest: desc.digest as string, manifest };
  };

  /** The document of the referrer of `subject` with this artifact type, from a layout of the project. */
  const attestation = (dir: string, subject: string, artifactType: string): Buffer => {
    const index = JSON.parse(readFileSync(join(suite.project, dir, "index.json"), "utf8")) as { manifests: Array<{ digest: string; artifactType?: string }> };
    for (const m of index.manifests.filter((d) => d.artifactType === artifactType)) {
      const manifest = JSON.parse(readFileSync(join(suite.project, dir, "blobs", "sha256", m.digest.slice(7)), "utf8"));
      if (manifest.subject?.digest === subject) return readFileSync(join(suite.project, dir, "blobs", "sha256", manifest.layers[0].digest.slice(7)));
    }
    assert.fail(`no ${artifactType} referrer of ${subject} in ${dir}`);
  };

  const suite = registrySuite({
    prefix: "mstage-regup-",
    client,
    push: { "base/busybox:1": base },
    images: ({ reg }) => `import { image, stage } from "mstage";
export const app = stage("app", {
  from: image("${reg.host}/base/busybox:1"),
  run: "echo hello > /hello.txt",
  cmd: ["/bin/sh"],
  tags: ["${reg.host}/out/app:1.0", "${reg.host}/out/app:latest"],
});
`,
  });

  test("up pulls an image() base, pins it in images.lock, and --push puts the output on its tags", async () => {
    const r = mstage(["up", "--push", "--progress", "plain"]);
    assert.equal(r.code, 0, r.all);
    const lock = JSON.parse(readFileSync(join(suite.project, "images.lock"), "utf8"));
    assert.equal(lock.images[`${suite.reg.host}/base/busybox:1`], base.manifest.digest);

    const out = layoutImage("oci", "app");
    // The base's layer is reused as pulled: same gzip blob, byte for byte.
    assert.equal(out.manifest.layers[0].digest, base.layers[0]!.digest);
    assert.ok(readFileSync(join(suite.project, "oci", "blobs", "sha256", base.layers[0]!.digest.slice(7))).equals(base.layers[0]!.bytes));
    assert.match(r.out, new RegExp(`${suite.reg.host}/out/app:1\\.0\\s+${out.digest.slice(0, 19)}`));

    for (const tag of ["1.0", "latest"]) {
      const inspected = JSON.parse(spawnSync("skopeo", ["inspect", "--tls-verify=false", `docker://${suite.reg.host}/out/app:${tag}`], { encoding: "utf8" }).stdout);
      assert.equal(inspected.Digest, out.digest);
    }
    const sink = new DirBlobSink(join(suite.tmp, "pulled"));
    const pulled = await pullImage(`${suite.reg.host}/out/app:1.0`, { store: sink, client });
    assert.equal(pulled.manifestDigest, out.digest);
    for (const l of out.manifest.layers) {
      assert.ok(sink.read(l.digest).equals(readFileSync(join(suite.project, "oci", "blobs", "sha256", l.digest.slice(7)))), `layer ${l.digest} differs`);
    }
  });

  test("a second, empty store with --cache-from plans cached (remote), builds nothing and gives the same digest", () => {
    const first = mstage(["up", "--cache-to", `registry://${suite.reg.host}/cache/app`, "--progress", "plain"]);
    assert.equal(first.code, 0, first.all);
    const want = layoutImage("oci", "app").digest;
    const planned = mstage(["plan", "--cache-from", `registry://${suite.reg.host}/cache/app`], "store-b");
    assert.equal(planned.code, 0, planned.all);
    assert.match(planned.out, new RegExp(`= app\\s+cached \\(remote registry://${suite.reg.host}/cache/app\\)`));
    assert.match(mstage(["plan"], "store-b").out, /~ app\s+rebuild: not in store/);
    const second = mstage(["up", "--cache-from", `registry://${suite.reg.host}/cache/app`, "--output", "oci:oci-b", "--progress", "plain"], "store-b");
    assert.equal(second.code, 0, second.all);
    assert.match(second.out, /0 built, 1 cached/);
    assert.doesNotMatch(second.all, /\[app\] run/);
    assert.equal(layoutImage("oci-b", "app").digest, want);
    // The attestations come through the cache too: the same SBOM bytes, and a provenance that names
    // the pulled base by its digest.
    const sbom = (dir: string) => attestation(dir, want, "application/spdx+json");
    assert.ok(sbom("oci-b").equals(sbom("oci")), "the SBOM made from cached layers is the same bytes");
    const provenance = JSON.parse(attestation("oci-b", want, "application/vnd.in-toto+json").toString("utf8"));
    const deps = provenance.predicate.buildDefinition.resolvedDependencies as Array<{ uri: string; digest: { sha256: string } }>;
    assert.deepEqual(deps.find((d) => d.uri === `docker://${suite.reg.host}/base/busybox:1`)?.digest, { sha256: base.manifest.digest.slice(7) });
    // The SBOM was not made again: the package scan came with the cached stage, so no layer was
    // ever extracted (or mounted) in the second store.
    assert.match(second.all, /app: layers and package scan from registry:\/\//);
    assert.deepEqual(readdirSync(join(suite.tmp, "store-b", "layers")), [], "no layer extracted to scan it again");
  });

  test("when the tag moves, plan keeps the pin; --refresh names the new digest", async () => {
    const next = makeTestImage({ label: "base-v2" });
    await pushImage({ ...pushArgs(next, `${suite.reg.host}/base/busybox:1`), client });
    const pinned = mstage(["plan"]);
    assert.equal(pinned.code, 0, pinned.all);
    assert.match(pinned.out, /= app\s+cached/);
    const offline = mstage(["plan", "--refresh", "--offline"]);
    assert.match(offline.out, /= app\s+cached/);
    const refreshed = mstage(["plan", "--refresh"]);
    assert.equal(refreshed.code, 0, refreshed.all);
    assert.match(refreshed.out, new RegExp(`~ app\\s+rebuild: base ${suite.reg.host}/base/busybox:1 now ${next.manifest.digest.slice(0, 19)}`));
  });

  test("--push without tags says which key to add", () => {
    writeFileSync(join(suite.project, "images.ts"), readFileSync(join(suite.project, "images.ts"), "utf8").replace(/\n  tags: .*\n/, "\n"));
    const r = mstage(["up", "--push", "--progress", "plain"]);
    assert.equal(r.code, 1, r.all);
    assert.match(r.err, /--push: no exported stage has tags; add tags:/);
  });
});
