// Layer compression through the built CLI, against a real docker-registry, skopeo and umoci: a base
// re-pushed with zstd by skopeo is pulled, built on and pushed; `compression: "zstd"` and
// `--compression zstd` write tar+zstd layers that skopeo and umoci read; gzip output (parallel,
// pigz-style) is read by Go's decompressor (skopeo, umoci) and is the same from two clean stores.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegistryClient, pushImage } from "@mstage/runtime";
import { cliRegistryUnavailable, makeTestImage, startRegistry, type RunningRegistry, pushArgs } from "./helpers/registry.ts";

const CLI = join(import.meta.dirname, "..", "packages", "cli", "bin", "mstage.mjs");
const ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd";
const GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

function whyNot(): string | undefined {
  for (const tool of ["skopeo", "umoci", "zstd"]) {
    if (spawnSync(tool, ["--version"]).status !== 0) return `${tool} is not installed (.ci/setup installs it)`;
  }
  return cliRegistryUnavailable();
}

describe("layer compression: gzip, zstd, pulled zstd bases", { skip: whyNot() }, () => {
  let reg: RunningRegistry;
  let tmp: string;
  const client = new RegistryClient();

  const mstage = (project: string, args: string[], store = "store-a") => {
    const r = spawnSync(process.execPath, [CLI, ...args, "--store", join(tmp, store)], { cwd: project, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    return { code: r.status, out: r.stdout, err: r.stderr, all: r.stdout + r.stderr };
  };
  const skopeo = (args: string[]) => {
    const r = spawnSync("skopeo", args, { encoding: "utf8" });
    assert.equal(r.status, 0, `skopeo ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const layerTypes = (ref: string) =>
    (JSON.parse(skopeo(["inspect", "--raw", "--tls-verify=false", `docker://${ref}`])) as { layers: { mediaType: string }[] }).layers.map((l) => l.mediaType);
  const layoutLayerTypes = (dir: string, ref: string) => {
    const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
    const desc = index.manifests.find((m: { annotations?: Record<string, string> }) => m.annotations?.["org.opencontainers.image.ref.name"] === ref);
    assert.ok(desc, `no ${ref} in ${dir}`);
    const manifest = JSON.parse(readFileSync(join(dir, "blobs", "sha256", desc.digest.slice(7)), "utf8"));
    return { digest: desc.digest as string, types: manifest.layers.map((l: { mediaType: string }) => l.mediaType) as string[] };
  };
  /**
   * umoci (Go's compress/gzip) unpacks the image; returns the rootfs. umoci 0.4.7 knows no zstd, so a
   * zstd image is first read by containers/image (skopeo copy, podman's library: it decompresses
   * every layer and checks its diff-id) into a gzip layout.
   */
  const unpack = (layout: string, ref: string) => {
    const id = Math.random().toString(36).slice(2);
    if (layoutLayerTypes(layout, ref).types.includes(ZSTD)) {
      skopeo(["copy", "--dest-compress-format", "gzip", `oci:${layout}:${ref}`, `oci:${join(tmp, `regz-${id}`)}:${ref}`]);
      layout = join(tmp, `regz-${id}`);
    }
    const bundle = join(tmp, `bundle-${id}`);
    const r = spawnSync("umoci", ["unpack", "--rootless", "--image", `${layout}:${ref}`, bundle], { encoding: "utf8" });
    assert.equal(r.status, 0, `umoci unpack ${ref}: ${r.stderr}`);
    return join(bundle, "rootfs");
  };
  /** A project of one exported stage "app" on `from`, with `fields` (TypeScript source lines). */
  const project = (name: string, from: string, fields: string[]) => {
    const dir = join(tmp, name);
    mkdirSync(dir);
    writeFileSync(join(dir, "images.ts"), `import { image, stage } from "mstage";\nexport const app = stage("app", {\n  from: image("${from}"),\n${fields.map((f) => `  ${f},\n`).join("")}});\n`);
    return dir;
  };
  /** `up` of the project again with no ./oci, no state and an empty store: the digest of app. */
  const upFromScratch = (dir: string, store: string) => {
    rmSync(join(dir, "oci"), { recursive: true, force: true });
    rmSync(join(dir, ".mstage"), { recursive: true, force: true });
    const r = mstage(dir, ["up", "--progress", "plain"], store);
    assert.equal(r.code, 0, r.all);
    return layoutLayerTypes(join(dir, "oci"), "app").digest;
  };

  before(async () => {
    reg = await startRegistry();
    tmp = mkdtempSync(join(tmpdir(), "mstage-compress-"));
    await pushImage({ ...pushArgs(makeTestImage({ label: "gz" }), `${reg.host}/base/busybox:gzip`), client });
    // The same image with every layer recompressed as zstd, the way podman/buildah users publish it
    // (through a layout: registry to registry, skopeo 1.9 reuses the gzip blobs the registry has).
    skopeo(["copy", "--src-tls-verify=false", "--dest-compress-format", "zstd", `docker://${reg.host}/base/busybox:gzip`, `oci:${join(tmp, "zstd-base-layout")}:z`]);
    skopeo(["copy", "--dest-tls-verify=false", `oci:${join(tmp, "zstd-base-layout")}:z`, `docker://${reg.host}/base/busybox:zstd`]);
    assert.deepEqual(layerTypes(`${reg.host}/base/busybox:zstd`), [ZSTD]);
  });
  after(async () => {
    await client.close();
    await reg?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test("a base with zstd layers is pulled and built on; compression: \"zstd\" pushes zstd layers skopeo and umoci read", () => {
    const dir = project("zstd-base", `${reg.host}/base/busybox:zstd`, [
      `run: "echo built-on-zstd > /hello.txt && cat /hello.txt"`,
      `compression: "zstd"`,
      `tags: ["${reg.host}/out/zstd:1"]`,
    ]);
    const r = mstage(dir, ["up", "--push", "--progress", "plain"]);
    assert.equal(r.code, 0, r.all);
    assert.match(r.all, /built-on-zstd/);
    assert.match(r.all, /compressed layer [0-9a-f]{12} \([^)]*zstd\) in [0-9.]+m?s, [0-9.]+ [kMG]?B\/s/);
    const local = layoutLayerTypes(join(dir, "oci"), "app");
    assert.deepEqual(local.types, [ZSTD, ZSTD], "the pulled zstd base layer and the new layer");
    assert.deepEqual(layerTypes(`${reg.host}/out/zstd:1`), [ZSTD, ZSTD]);
    const rootfs = unpack(join(dir, "oci"), "app");
    assert.equal(readFileSync(join(rootfs, "hello.txt"), "utf8"), "built-on-zstd\n");
    assert.ok(existsSync(join(rootfs, "bin", "busybox")));
    // skopeo (containers/image) reads the pushed image back whole, decompressing and checking every layer.
    skopeo(["copy", "--src-tls-verify=false", `docker://${reg.host}/out/zstd:1`, `oci:${join(tmp, "copied")}:z`]);

    // Same project, clean store: the same bytes (zstd's output does not depend on its thread count).
    assert.equal(upFromScratch(dir, "store-b"), local.digest);
  });

  test("--compression zstd overrides the default gzip; a later plain up writes gzip again; gzip layers are the same from two clean stores", () => {
    const dir = project("gzip-base", `${reg.host}/base/busybox:gzip`, [`run: "seq 1 300000 > /numbers.txt"`, `tags: ["${reg.host}/out/flag:1"]`]);
    const gz = mstage(dir, ["up", "--progress", "plain"], "store-g");
    assert.equal(gz.code, 0, gz.all);
    // The stage's layer is gzipped from its dir: one line says so, not one per report of its end.
    const lines = [...gz.all.matchAll(/compressed layer ([0-9a-f]{12})/g)].map((m) => m[1]);
    assert.equal(lines.length, 1, gz.all);
    const first = layoutLayerTypes(join(dir, "oci"), "app");
    assert.deepEqual(first.types, [GZIP, GZIP]);
    assert.match(readFileSync(join(unpack(join(dir, "oci"), "app"), "numbers.txt"), "utf8"), /^1\n2\n[\s\S]*\n300000\n$/);

    const z = mstage(dir, ["up", "--compression", "zstd", "--push", "--progress", "plain"], "store-g");
    assert.equal(z.code, 0, z.all);
    // The pulled base keeps its gzip blob (this store holds no zstd of it); the stage's own layer is zstd.
    assert.deepEqual(layoutLayerTypes(join(dir, "oci"), "app").types, [GZIP, ZSTD]);
    assert.deepEqual(layerTypes(`${reg.host}/out/flag:1`), [GZIP, ZSTD]);
    assert.match(readFileSync(join(unpack(join(dir, "oci"), "app"), "numbers.txt"), "utf8"), /\n300000\n$/);

    // Nothing changed but the wanted compression: the no-op path must not keep the zstd output.
    const back = mstage(dir, ["up", "--progress", "plain"], "store-g");
    assert.equal(back.code, 0, back.all);
    assert.deepEqual(layoutLayerTypes(join(dir, "oci"), "app"), first);

    const bad = mstage(dir, ["up", "--compression", "xz"], "store-g");
    assert.equal(bad.code, 1);
    assert.match(bad.err, /--compression "xz": write --compression gzip or --compression zstd/);

    assert.equal(upFromScratch(dir, "store-c"), first.digest, "parallel gzip gives the same digest from a clean store");
  });
});
