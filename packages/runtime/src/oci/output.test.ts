// The OCI outputs judged by real tools: a busybox image made by hand in a real store, written as an
// OCI layout and a docker-archive, then inspected with skopeo, unpacked with umoci and run with runc.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, symlinkSync, copyFileSync, chmodSync, lstatSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../store/store.ts";
import { compressLayer } from "../layer/compress.ts";
import { addLayer, applyStageConfig, createdTimestamp, emptyImageConfig, stageHistoryEntry } from "./config.ts";
import { sha256Digest, type Digest } from "./digest.ts";
import { writeDockerArchive } from "./docker-archive.ts";
import { writeOciLayout, type OutputImage } from "./layout.ts";
import { buildImage, type BuiltImage } from "./manifest.ts";
import { Annotation, MediaType, type ImageIndex, type ImageManifest } from "./types.ts";

const BUSYBOX = "/bin/busybox";
const amd64 = { os: "linux", architecture: "amd64" };
let work: string;

before(() => {
  work = mkdtempSync(join(tmpdir(), "mstage-oci-test-"));
});
after(() => {
  rmSync(work, { recursive: true, force: true });
});

function run(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: opts.cwd, input: opts.input, timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function have(cmd: string): boolean {
  return run("sh", ["-c", `command -v ${cmd}`]).code === 0;
}

/** A reproducible tar of a directory, the way a layer commit would make it (sorted, mtime 0, root-owned). */
async function tarLayer(store: Store, dir: string): Promise<Digest> {
  const r = spawnSync("tar", ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "--format=pax",
    "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime", "-cf", "-", "-C", dir, "."], { maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, String(r.stderr));
  const { digest } = await store.writeBlob(r.stdout as Buffer);
  return digest;
}

interface Fixture {
  store: Store;
  image: BuiltImage;
  refs: string[];
}

/** busybox in /bin plus a greeting layer; cmd prints the greeting. Two calls with fresh stores must agree. */
async function makeImage(storeDir: string, greeting = "hello from mstage\n"): Promise<Fixture> {
  const store = await Store.open(storeDir);
  const l1 = join(storeDir, "..", `l1-${Math.random().toString(36).slice(2)}`);
  mkdirSync(join(l1, "bin"), { recursive: true });
  copyFileSync(BUSYBOX, join(l1, "bin", "busybox"));
  chmodSync(join(l1, "bin", "busybox"), 0o755);
  symlinkSync("busybox", join(l1, "bin", "sh"));
  const l2 = join(storeDir, "..", `l2-${Math.random().toString(36).slice(2)}`);
  mkdirSync(join(l2, "etc"), { recursive: true });
  writeFileSync(join(l2, "etc", "greeting"), greeting);
  chmodSync(join(l2, "etc", "greeting"), 0o644);
  const d1 = await tarLayer(store, l1);
  const d2 = await tarLayer(store, l2);
  rmSync(l1, { recursive: true });
  rmSync(l2, { recursive: true });

  const created = createdTimestamp(0);
  let config = emptyImageConfig(amd64);
  config = addLayer(applyStageConfig(config, {}, "final"), d1, stageHistoryEntry("base", { copy: [["/bin/busybox", { kind: "inline", text: "" }]] }, { created, emptyLayer: false }));
  const spec = { env: { GREETING_FILE: "/etc/greeting" }, cmd: ["/bin/busybox", "cat", "/etc/greeting"], labels: { "org.example.test": "yes" }, expose: ["8080"] };
  config = addLayer(applyStageConfig(config, spec, "final"), d2, stageHistoryEntry("hello", { run: ["echo hi > /etc/greeting"] }, { created, emptyLayer: false }));
  const image = await buildImage(store, { config, annotations: { "org.example.stage": "hello" } }, { compress: (d) => compressLayer(store, d) });
  return { store, image, refs: ["hello", "registry.example.com/hello:1.0"] };
}

/** Path → sha256 of every file under dir, plus the inode of each, to prove nothing was touched. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p, `${rel}${name}/`);
      else out[rel + name] = `${st.ino}:${createHash("sha256").update(readFileSync(p)).digest("hex")}`;
    }
  };
  walk(dir, "");
  return out;
}

let fixture: Fixture;
let layoutDir: string;

test("the image's manifest is an OCI manifest with gzip layers, created and custom annotations", async () => {
  fixture = await makeImage(join(work, "store-a"));
  const m: ImageManifest = JSON.parse(readFileSync(fixture.store.blobPath(fixture.image.descriptor.digest), "utf8"));
  assert.equal(m.mediaType, MediaType.ociManifest);
  assert.equal(m.config.mediaType, MediaType.ociConfig);
  assert.deepEqual(m.layers.map((l) => l.mediaType), [MediaType.ociLayerGzip, MediaType.ociLayerGzip]);
  assert.equal(m.annotations?.[Annotation.created], "1970-01-01T00:00:00Z");
  assert.equal(m.annotations?.["org.example.stage"], "hello");
  assert.equal(sha256Digest(readFileSync(fixture.store.blobPath(fixture.image.descriptor.digest))), fixture.image.descriptor.digest);
});

test("skopeo inspects the written layout under the stage name and under each tag", async (t) => {
  if (!have("skopeo")) return t.skip("skopeo is not installed (.ci/setup installs it)");
  layoutDir = join(work, "oci");
  await writeOciLayout(layoutDir, [{ refs: fixture.refs, image: fixture.image }], fixture.store);
  for (const ref of fixture.refs) {
    const r = run("skopeo", ["inspect", `oci:${layoutDir}:${ref}`]);
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout);
    assert.equal(info.Digest, fixture.image.descriptor.digest);
    assert.equal(info.Created, "1970-01-01T00:00:00Z");
    assert.equal(info.Labels["org.example.test"], "yes");
    assert.equal(info.Layers.length, 2);
    assert.ok(info.Env.includes("GREETING_FILE=/etc/greeting"));
  }
  const index: ImageIndex = JSON.parse(readFileSync(join(layoutDir, "index.json"), "utf8"));
  assert.deepEqual(index.manifests.map((m) => m.annotations?.[Annotation.refName]), ["hello", "registry.example.com/hello:1.0"]);
  assert.equal(readFileSync(join(layoutDir, "oci-layout"), "utf8"), '{"imageLayoutVersion":"1.0.0"}');
});

test("layout blobs are verified copies, never hard links into the store: damage to one cannot reach the other", async () => {
  const blobs: Record<string, string> = {};
  const dir = join(work, "oci-links");
  await writeOciLayout(dir, [{ refs: ["hello"], image: fixture.image }], fixture.store, { onBlob: (d, how) => (blobs[d] = how) });
  assert.equal(Object.keys(blobs).length, 4); // manifest, config, two layers
  assert.deepEqual(new Set(Object.values(blobs)), new Set(["copy"]));
  const d = fixture.image.layers[0]!.descriptor.digest;
  assert.notEqual(statSync(join(dir, "blobs", "sha256", d.slice(7))).ino, statSync(fixture.store.blobPath(d)).ino);
  assert.ok(readFileSync(join(dir, "blobs", "sha256", d.slice(7))).equals(readFileSync(fixture.store.blobPath(d))));
});

test("umoci unpacks the layout and its bundle runs (runc as root, unshare+chroot unprivileged), printing the greeting", async (t) => {
  if (!have("umoci")) return t.skip("umoci is not installed (.ci/setup installs it)");
  const rootless = process.getuid?.() !== 0;
  const bundle = join(work, "bundle");
  const u = run("umoci", ["unpack", ...(rootless ? ["--rootless"] : []), "--image", `${layoutDir}:hello`, bundle]);
  assert.equal(u.code, 0, u.stderr);
  assert.equal(readFileSync(join(bundle, "rootfs", "etc", "greeting"), "utf8"), "hello from mstage\n");
  assert.deepEqual(readdirSync(join(bundle, "rootfs")).sort(), ["bin", "etc"]);
  const spec = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
  assert.deepEqual(spec.process.args, ["/bin/busybox", "cat", "/etc/greeting"]);
  assert.ok(spec.process.env.includes("GREETING_FILE=/etc/greeting"));

  if (rootless || !have("runc")) {
    // Unprivileged: the same rootfs and argv through a user namespace and chroot.
    const r = run("unshare", ["--map-root-user", "chroot", join(bundle, "rootfs"), ...spec.process.args]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hello from mstage\n");
    return;
  }
  spec.process.terminal = false;
  writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));
  const id = `mstage-oci-test-${process.pid}`;
  const r = run("runc", ["--root", join(work, "runc"), "run", "-b", bundle, id]);
  run("runc", ["--root", join(work, "runc"), "delete", "--force", id]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "hello from mstage\n");
});

test("the same inputs in two fresh stores give the same manifest digest and the same index.json", async () => {
  const again = await makeImage(join(work, "store-b"));
  assert.equal(again.image.descriptor.digest, fixture.image.descriptor.digest);
  const dir = join(work, "oci-b");
  await writeOciLayout(dir, [{ refs: again.refs, image: again.image }], again.store);
  assert.equal(readFileSync(join(dir, "index.json"), "utf8"), readFileSync(join(layoutDir, "index.json"), "utf8"));
  const other = await makeImage(join(work, "store-c"), "changed\n");
  assert.notEqual(other.image.descriptor.digest, fixture.image.descriptor.digest);
});

test("a write that fails part-way leaves the previous layout exactly as it was", async () => {
  const dir = join(work, "oci-fail");
  await writeOciLayout(dir, [{ refs: fixture.refs, image: fixture.image }], fixture.store);
  const before = snapshot(dir);

  // A blob the store does not have: fails after some blobs were already placed.
  const broken: BuiltImage = {
    ...fixture.image,
    layers: [...fixture.image.layers, { diffId: sha256Digest("x"), descriptor: { mediaType: MediaType.ociLayerGzip, digest: sha256Digest("missing"), size: 1 } }],
  };
  await assert.rejects(writeOciLayout(dir, [{ refs: ["other"], image: broken }], fixture.store), /missing from the store/);
  assert.deepEqual(snapshot(dir), before);

  // Aborted between blobs (Ctrl-C).
  const ac = new AbortController();
  await assert.rejects(
    writeOciLayout(dir, [{ refs: ["other"], image: fixture.image }], fixture.store, { signal: ac.signal, onBlob: () => ac.abort() }),
    { name: "AbortError" },
  );
  assert.deepEqual(snapshot(dir), before);
  assert.deepEqual(readdirSync(work).filter((n) => n.includes("mstage-")), [], "no temp dirs left beside the layout");
});

test("rewriting a layout replaces it whole: refs and blobs of images no longer written are gone", async () => {
  const dir = join(work, "oci-replace");
  const other = await makeImage(join(work, "store-a"), "other\n");
  await writeOciLayout(dir, [{ refs: fixture.refs, image: fixture.image }, { refs: ["other"], image: other.image }], fixture.store);
  const index1: ImageIndex = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  assert.equal(index1.manifests.length, 3);
  let dropped: string[] = [];
  await writeOciLayout(dir, [{ refs: ["other"], image: other.image }], fixture.store, { onDroppedRefs: (r) => (dropped = r) });
  assert.deepEqual(dropped, fixture.refs);
  const index2: ImageIndex = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  assert.deepEqual(index2.manifests.map((m) => m.annotations?.[Annotation.refName]), ["other"]);
  const want = new Set([other.image.descriptor.digest, other.image.configDescriptor.digest, ...other.image.layers.map((l) => l.descriptor.digest)].map((d) => d.slice(7)));
  assert.deepEqual(new Set(readdirSync(join(dir, "blobs", "sha256"))), want);
});

test("an interrupted swap (target moved aside, new one not yet in) is undone by the next write", async () => {
  const dir = join(work, "oci-swap");
  await writeOciLayout(dir, [{ refs: ["hello"], image: fixture.image }], fixture.store);
  const before = snapshot(dir);
  const { renameSync } = await import("node:fs");
  renameSync(dir, join(work, ".oci-swap.mstage-old"));
  // A failing write still restores the previous layout first.
  await assert.rejects(writeOciLayout(dir, [{ refs: ["bad name!"], image: fixture.image }], fixture.store), /cannot name an image/);
  await writeOciLayout(join(work, "unrelated"), [{ refs: ["x"], image: fixture.image }], fixture.store);
  await writeOciLayout(dir, [{ refs: ["hello"], image: fixture.image }], fixture.store);
  assert.equal(existsSync(join(work, ".oci-swap.mstage-old")), false);
  assert.deepEqual(Object.keys(snapshot(dir)), Object.keys(before));
});

test("layouts written to one directory at once all succeed, and the last one stands whole", async () => {
  const dir = join(work, "oci-race");
  const others = [await makeImage(join(work, "store-a"), "one\n"), await makeImage(join(work, "store-a"), "two\n"), fixture];
  const writes = [];
  for (let i = 0; i < 6; i++) {
    const img = others[i % others.length]!.image;
    writes.push(writeOciLayout(dir, [{ refs: ["race"], image: img }], fixture.store));
  }
  await Promise.all(writes);
  const index: ImageIndex = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  assert.equal(index.manifests.length, 1);
  const winner = others.find((o) => o.image.descriptor.digest === index.manifests[0]!.digest)!;
  assert.ok(winner, "the index names one of the written images");
  assert.equal(readdirSync(join(dir, "blobs", "sha256")).length, 4);
  assert.deepEqual(readdirSync(work).filter((n) => n.startsWith(".oci-race.")), [], "no temp or old dirs left");
});

test("a directory that is not an OCI layout is never replaced", async () => {
  const dir = join(work, "not-a-layout");
  mkdirSync(dir);
  writeFileSync(join(dir, "precious.txt"), "keep me");
  await assert.rejects(writeOciLayout(dir, [{ refs: ["hello"], image: fixture.image }], fixture.store), /not an OCI image layout/);
  assert.equal(readFileSync(join(dir, "precious.txt"), "utf8"), "keep me");
});

test("two images claiming one ref is an error that names the ref", async () => {
  const other = await makeImage(join(work, "store-a"), "clash\n");
  const images: OutputImage[] = [{ refs: ["app:1"], image: fixture.image }, { refs: ["app:1"], image: other.image }];
  await assert.rejects(writeOciLayout(join(work, "oci-clash"), images, fixture.store), /two images want the ref "app:1"/);
});

test("the docker-archive passes skopeo inspect and skopeo copy back to an OCI layout that umoci unpacks", async (t) => {
  if (!have("skopeo") || !have("umoci")) return t.skip("skopeo or umoci is not installed (.ci/setup installs them)");
  const file = join(work, "hello.tar");
  const entries = await writeDockerArchive(file, [{ refs: fixture.refs, image: fixture.image }], fixture.store);
  assert.deepEqual(entries[0]!.RepoTags, ["hello:latest", "registry.example.com/hello:1.0"]);
  const listing = run("tar", ["-tf", file]).stdout.trim().split("\n");
  assert.ok(listing.includes("manifest.json"));
  assert.equal(listing.filter((n) => n.endsWith("/layer.tar")).length, 2);

  const r = run("skopeo", ["inspect", `docker-archive:${file}`]);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.Labels["org.example.test"], "yes");
  assert.deepEqual(info.RepoTags, []); // skopeo lists tags of a repository, not the archive's names

  const copied = join(work, "from-archive");
  const c = run("skopeo", ["copy", `docker-archive:${file}`, `oci:${copied}:hello`]);
  assert.equal(c.code, 0, c.stderr);
  const bundle = join(work, "bundle-archive");
  const u = run("umoci", ["unpack", ...(process.getuid?.() !== 0 ? ["--rootless"] : []), "--image", `${copied}:hello`, bundle]);
  assert.equal(u.code, 0, u.stderr);
  assert.equal(readFileSync(join(bundle, "rootfs", "etc", "greeting"), "utf8"), "hello from mstage\n");
  // The config travelled unchanged: the same diff-ids and config digest.
  const copiedConfig = JSON.parse(run("skopeo", ["inspect", "--config", `oci:${copied}:hello`]).stdout);
  assert.deepEqual(copiedConfig.rootfs.diff_ids, fixture.image.config.rootfs.diff_ids);
});

const podmanArgs = () => ["--root", join(work, "podman-root"), "--runroot", join(work, "podman-run"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"];

function podmanSkipReason(): string | undefined {
  if (!have("podman")) return "podman is not installed; the docker-archive was still judged by skopeo above";
  if (process.getuid?.() !== 0) return "podman with a private storage root needs root here; run as root to check `podman load`";
  return undefined;
}

test("podman load accepts the docker-archive with its name, config and labels", async (t) => {
  const why = podmanSkipReason();
  if (why) return t.skip(why);
  const file = join(work, "hello-podman.tar");
  await writeDockerArchive(file, [{ refs: ["hello"], image: fixture.image }], fixture.store);
  const l = run("podman", [...podmanArgs(), "load", "-i", file]);
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stdout, /localhost\/hello:latest/);
  const i = run("podman", [...podmanArgs(), "image", "inspect", "localhost/hello:latest"]);
  assert.equal(i.code, 0, i.stderr);
  const info = JSON.parse(i.stdout)[0];
  assert.equal(info.Config.Labels["org.example.test"], "yes");
  assert.deepEqual(info.RootFS.Layers, fixture.image.config.rootfs.diff_ids);
});

test("podman runs the loaded image and it prints the greeting", async (t) => {
  const why = podmanSkipReason();
  if (why) return t.skip(why);
  try {
    const r = run("podman", [...podmanArgs(), "run", "--rm", "--network", "none", ...hostUlimits(), "localhost/hello:latest"]);
    if (r.code !== 0 && /cgroup|rlimit|OCI runtime|OCI permission denied/i.test(r.stderr)) {
      return t.skip(`podman cannot start containers on this host (runc and skopeo judged the image above): ${r.stderr.trim().split("\n").pop()}`);
    }
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hello from mstage\n");
  } finally {
    run("podman", [...podmanArgs(), "system", "reset", "--force"]);
  }
});

test("the docker-archive is reproducible and replaced atomically", async () => {
  const a = join(work, "a.tar");
  const b = join(work, "b.tar");
  await writeDockerArchive(a, [{ refs: ["hello"], image: fixture.image }], fixture.store);
  await writeDockerArchive(b, [{ refs: ["hello"], image: fixture.image }], fixture.store);
  assert.equal(sha256Digest(readFileSync(a)), sha256Digest(readFileSync(b)));
  const before = readFileSync(a);
  const broken: BuiltImage = { ...fixture.image, configDescriptor: { ...fixture.image.configDescriptor, digest: sha256Digest("no such config") } };
  await assert.rejects(writeDockerArchive(a, [{ refs: ["hello"], image: broken }], fixture.store));
  assert.ok(readFileSync(a).equals(before));
  assert.deepEqual(readdirSync(work).filter((n) => n.includes(".mstage-tmp")), []);
});

/** podman asks for higher open-files and process limits than this sandboxed host allows; pass ours. */
function hostUlimits(): string[] {
  const [nofile, nproc] = run("bash", ["-c", "ulimit -Hn; ulimit -Hu"]).stdout.trim().split("\n").map((v) => (v === "unlimited" ? "-1" : v));
  return ["--ulimit", `nofile=${nofile}:${nofile}`, "--ulimit", `nproc=${nproc}:${nproc}`];
}
