// An OCI layout written by mstage goes to a real registry unchanged: `skopeo copy` accepts it and
// the registry serves the very manifest digest mstage computed (DESIGN §5).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Store,
  addLayer,
  applyStageConfig,
  buildImage,
  compressLayer,
  createdTimestamp,
  emptyImageConfig,
  stageHistoryEntry,
  writeOciLayout,
  type BuiltImage,
} from "@mstage/runtime";
import { registryUnavailable, startRegistry, type RunningRegistry } from "./helpers/registry.ts";

let work: string;
let registry: RunningRegistry | undefined;
let image: BuiltImage;
let layout: string;

function skopeo(args: string[]) {
  const r = spawnSync("skopeo", args, { encoding: "utf8", timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const unavailable = registryUnavailable() ?? (spawnSync("skopeo", ["--version"]).status === 0 ? undefined : "skopeo is not installed (.ci/setup installs it)");

before(async () => {
  work = mkdtempSync(join(tmpdir(), "mstage-oci-registry-"));
  if (unavailable) return;
  registry = await startRegistry();
  const store = await Store.open(join(work, "store"));
  const root = join(work, "rootfs");
  mkdirSync(join(root, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(root, "bin", "busybox"));
  chmodSync(join(root, "bin", "busybox"), 0o755);
  symlinkSync("busybox", join(root, "bin", "sh"));
  const tar = spawnSync("tar", ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", "-C", root, "."], { maxBuffer: 64 << 20 });
  assert.equal(tar.status, 0, String(tar.stderr));
  const { digest } = await store.writeBlob(tar.stdout as Buffer);
  const created = createdTimestamp(0);
  const config = addLayer(
    applyStageConfig(emptyImageConfig({ os: "linux", architecture: "amd64" }), { cmd: ["/bin/sh"] }, "final"),
    digest,
    stageHistoryEntry("busybox", {}, { created, emptyLayer: false }),
  );
  image = await buildImage(store, { config }, { compress: (d) => compressLayer(store, d) });
  layout = join(work, "oci");
  await writeOciLayout(layout, [{ refs: ["busybox", "mstage.test/busybox:1"], image }], store);
});

after(async () => {
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

test("skopeo copies the layout to a registry and the registry serves mstage's manifest digest", (t) => {
  if (unavailable || !registry) return t.skip(unavailable ?? "no registry");
  const dest = `docker://${registry.host}/mstage/busybox:1`;
  const c = skopeo(["copy", "--dest-tls-verify=false", `oci:${layout}:mstage.test/busybox:1`, dest]);
  assert.equal(c.code, 0, c.stderr);
  const i = skopeo(["inspect", "--tls-verify=false", dest]);
  assert.equal(i.code, 0, i.stderr);
  const info = JSON.parse(i.stdout);
  assert.equal(info.Digest, image.descriptor.digest);
  assert.deepEqual(info.Layers, image.layers.map((l) => l.descriptor.digest));
  const raw = JSON.parse(skopeo(["inspect", "--raw", "--tls-verify=false", dest]).stdout);
  assert.equal(raw.annotations["org.opencontainers.image.created"], "1970-01-01T00:00:00Z");
});
