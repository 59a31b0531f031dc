// Stage keys: identical across processes and project directories for the same inputs, and base
// identities (images.lock pins, OCI layouts, debian() pins, tarballs) that change them, on a state
// a real `mstage up` left. Plans run --offline so that unpinned tags stay unresolved whether or not
// this machine reaches docker.io.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyFixture, mstage } from "./helpers/mstage-cli.ts";
import { planBasesProject, startDockerMirror, type DockerMirror } from "./helpers/plan-bases.ts";
import { debianStore } from "./helpers/rootfs.ts";
import { cliRegistryUnavailable, makeTestImage, writeLayout } from "./helpers/registry.ts";

interface JsonPlan {
  stages: { name: string; status: string; reasons: string[]; layerKey: string | null; configKey: string | null }[];
}

const newStore = () => ({ MSTAGE_STORE: mkdtempSync(join(tmpdir(), "mstage-keys-store-")) });

function keys(dir: string, env: Record<string, string>): Record<string, [string | null, string | null]> {
  const r = mstage(dir, ["plan", "--offline", "--json"], env);
  assert.equal(r.code, 0, r.stderr);
  const p = JSON.parse(r.stdout) as JsonPlan;
  return Object.fromEntries(p.stages.map((s) => [s.name, [s.layerKey, s.configKey]]));
}

test("the same project gives identical keys in two processes and from two different directories", () => {
  const a = copyFixture("plan-basic");
  const b = copyFixture("plan-basic", join(mkdtempSync(join(tmpdir(), "mstage-keys-")), "deeper", "elsewhere"));
  const first = keys(a, newStore());
  assert.match(first.tools[0]!, /^[a-f0-9]{64}$/);
  assert.deepEqual(keys(a, newStore()), first, "a second process, cold stat cache");
  assert.deepEqual(keys(b, newStore()), first, "another absolute directory");
});

test("a different file content gives a different layer key, a different cmd only a different config key", () => {
  const a = copyFixture("plan-basic");
  const before = keys(a, newStore());
  writeFileSync(join(a, "src/go.mod"), "module example.com/other\n");
  const after = keys(a, newStore());
  assert.notEqual(after.tools[0], before.tools[0]);
  const b = copyFixture("plan-basic");
  const images = join(b, "images.ts");
  writeFileSync(images, readFileSync(images, "utf8").replace(`cmd: ["/bin/app"]`, `cmd: ["/bin/app2"]`));
  const cmd = keys(b, newStore());
  assert.equal(cmd.app[0], before.app[0]);
  assert.notEqual(cmd.app[1], before.app[1]);
});

const upSkip = cliRegistryUnavailable() ?? (existsSync("/usr/bin/mmdebstrap") ? undefined : "mmdebstrap is missing: run .ci/setup");
const golang = "golang:1.22";

describe("plans of a project built by a real up on every kind of base", { skip: upSkip }, () => {
  let mirror: DockerMirror;
  before(async () => {
    mirror = await startDockerMirror();
    await mirror.push(golang, makeTestImage({ label: "golang-1" }));
  });
  after(() => mirror?.stop());

  /** A fresh plan-bases project, built by `mstage up` into the kept store that holds its debian() base. */
  const built = (): { dir: string; env: Record<string, string> } => {
    const dir = planBasesProject();
    const env = { ...mirror.env, MSTAGE_STORE: debianStore() };
    const r = mstage(dir, ["up", "-q"], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return { dir, env };
  };

  test("an image() base is unresolved until up pins it, and a moved tag names the new digest", { timeout: 5 * 60_000 }, async () => {
    const fresh = planBasesProject();
    const p0 = JSON.parse(mstage(fresh, ["plan", "--offline", "--json"], { ...mirror.env, ...newStore() }).stdout) as JsonPlan;
    const img = p0.stages.find((s) => s.name === "from-image")!;
    assert.equal(img.status, "new");
    assert.deepEqual(img.reasons, ["base docker.io/library/golang:1.22 not resolved yet (run mstage up)"]);

    const { dir, env } = built();
    let p = JSON.parse(mstage(dir, ["plan", "--offline", "--json"], env).stdout) as JsonPlan;
    assert.ok(p.stages.every((s) => s.status === "cached"), JSON.stringify(p.stages));

    // An image of this run only: the kept store may hold results built on earlier runs' images.
    const moved = makeTestImage({ label: `golang-2 ${process.pid} ${Date.now()}` });
    await mirror.push(golang, moved);
    p = JSON.parse(mstage(dir, ["plan", "--refresh", "--json"], env).stdout) as JsonPlan;
    assert.deepEqual(p.stages.find((s) => s.name === "from-image")!.reasons, [`base docker.io/library/golang:1.22 now ${moved.manifest.digest.slice(0, 19)}…`]);
  });

  test("an oci() base is keyed by its manifest digest, a debian() base by its pinned versions, a tarball by its bytes", { timeout: 5 * 60_000 }, () => {
    const { dir, env } = built();
    // The layout's ref moves to another image, as `skopeo copy` over it would.
    const other = makeTestImage({ label: `oci-base-2 ${process.pid} ${Date.now()}` });
    writeLayout(join(dir, "layout"), { "base:1.0": other });
    // images.lock as it was when the mirror installed an older libc6 (say, checked out from git).
    const lockFile = join(dir, "images.lock");
    const lock = JSON.parse(readFileSync(lockFile, "utf8")) as { debian: Record<string, { packages: Record<string, string> }> };
    const pinned = lock.debian["bookworm/minbase"]!.packages;
    // bookworm's first libc6, which its point releases have replaced.
    const older = "2.36-9";
    assert.ok(pinned.libc6 && pinned.libc6 !== older, `up pinned the libc6 it installed: ${pinned.libc6}`);
    pinned.libc6 = older;
    writeFileSync(lockFile, JSON.stringify(lock));
    writeFileSync(join(dir, "rootfs/rootfs.tar"), "other bytes\n");
    const p = JSON.parse(mstage(dir, ["plan", "--offline", "--json"], env).stdout) as JsonPlan;
    const why = (n: string) => p.stages.find((s) => s.name === n)!.reasons;
    assert.deepEqual(why("from-oci"), [`base oci ./layout:base:1.0 now ${other.manifest.digest.slice(0, 19)}…`]);
    assert.deepEqual(why("from-debian"), ["base debian bookworm: pinned package versions changed"]);
    assert.deepEqual(why("from-tarball"), ["local ./rootfs/rootfs.tar changed"]);
  });
});

test("an oci() ref missing from the layout is an error naming the stage and the refs it has", () => {
  const dir = planBasesProject();
  const images = join(dir, "images.ts");
  writeFileSync(images, readFileSync(images, "utf8").replace(`"base:1.0"`, `"base:2.0"`));
  const r = mstage(dir, ["plan", "--offline"], newStore());
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: images\.ts:5:\d+: stage "from-oci", key "from": oci\("\.\/layout", "base:2\.0"\): no image with that ref; the layout has: base:1\.0/);
});

test("an image() pinned by digest needs no images.lock entry", () => {
  const dir = planBasesProject();
  const images = join(dir, "images.ts");
  writeFileSync(images, readFileSync(images, "utf8").replace("golang:1.22", `golang@sha256:${"c".repeat(64)}`));
  const p = JSON.parse(mstage(dir, ["plan", "--offline", "--json"], newStore()).stdout) as JsonPlan;
  const img = p.stages.find((s) => s.name === "from-image")!;
  assert.equal(img.status, "new");
  assert.deepEqual(img.reasons, []);
});

test("a registry that cannot be reached leaves the tag unresolved, with a warning, and plan still answers", () => {
  const dir = planBasesProject();
  const images = join(dir, "images.ts");
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  writeFileSync(images, readFileSync(images, "utf8").replace("docker.io/library/golang:1.22", "127.0.0.1:1/golang:1.22"));
  const r = mstage(dir, ["plan"], newStore());
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\+ from-image\s+new: base 127\.0\.0\.1:1\/golang:1\.22 not resolved yet \(run mstage up\)/);
  assert.match(r.stderr, /^warning: 127\.0\.0\.1:1\/golang:1\.22 not resolved: cannot connect to registry 127\.0\.0\.1:1 \(ECONNREFUSED\)/m);
});
