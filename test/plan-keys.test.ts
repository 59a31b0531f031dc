// Stage keys: identical across processes and project directories for the same inputs, and base
// identities (images.lock pins, OCI layouts, debian() pins, tarballs) that change them. Plans run
// --offline so that unpinned tags stay unresolved whether or not this machine reaches docker.io.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { copyFixture, mstage } from "./helpers/mstage-cli.ts";
import { recordProjectBuilt } from "./helpers/record-build.ts";

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

test("an image() base is unresolved until images.lock pins it, and a new pin names the digest", async () => {
  const dir = copyFixture("plan-bases");
  const env = newStore();
  let p = JSON.parse(mstage(dir, ["plan", "--offline", "--json"], env).stdout) as JsonPlan;
  const img = p.stages.find((s) => s.name === "from-image")!;
  assert.equal(img.status, "new");
  assert.deepEqual(img.reasons, ["base docker.io/library/golang:1.22 not resolved yet (run mstage up)"]);

  const pin = (digit: string) =>
    writeFileSync(join(dir, "images.lock"), JSON.stringify({ images: { "docker.io/library/golang:1.22": `sha256:${digit.repeat(64)}` }, debian: {} }));
  pin("a");
  await recordProjectBuilt(dir, env.MSTAGE_STORE);
  p = JSON.parse(mstage(dir, ["plan", "--offline", "--json"], env).stdout) as JsonPlan;
  assert.ok(p.stages.every((s) => s.status === "cached"), JSON.stringify(p.stages));

  pin("b");
  p = JSON.parse(mstage(dir, ["plan", "--offline", "--json"], env).stdout) as JsonPlan;
  assert.deepEqual(p.stages.find((s) => s.name === "from-image")!.reasons, ["base docker.io/library/golang:1.22 now sha256:bbbbbbbbbbbb…"]);
});

test("an oci() base is keyed by its manifest digest, a debian() base by its pinned versions, a tarball by its bytes", async () => {
  const dir = copyFixture("plan-bases");
  const env = newStore();
  await recordProjectBuilt(dir, env.MSTAGE_STORE);
  const index = join(dir, "layout/index.json");
  writeFileSync(index, readFileSync(index, "utf8").replace(/1{64}/, "2".repeat(64)));
  writeFileSync(join(dir, "images.lock"), JSON.stringify({ images: {}, debian: { "bookworm/minbase +curl": { packages: { curl: "7.88.1-10+deb12u8" } } } }));
  writeFileSync(join(dir, "rootfs/rootfs.tar"), "other bytes\n");
  const p = JSON.parse(mstage(dir, ["plan", "--offline", "--json"], env).stdout) as JsonPlan;
  const why = (n: string) => p.stages.find((s) => s.name === n)!.reasons;
  assert.deepEqual(why("from-oci"), ["base oci ./layout:base:1.0 now sha256:222222222222…"]);
  assert.deepEqual(why("from-debian"), ["base debian bookworm +curl: pinned package versions changed"]);
  assert.deepEqual(why("from-tarball"), ["local ./rootfs/rootfs.tar changed"]);
});

test("an oci() ref missing from the layout is an error naming the stage and the refs it has", () => {
  const dir = copyFixture("plan-bases");
  const images = join(dir, "images.ts");
  writeFileSync(images, readFileSync(images, "utf8").replace(`"base:1.0"`, `"base:2.0"`));
  const r = mstage(dir, ["plan", "--offline"], newStore());
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error: images\.ts:5:\d+: stage "from-oci", key "from": oci\("\.\/layout", "base:2\.0"\): no image with that ref; the layout has: base:1\.0/);
});

test("an image() pinned by digest needs no images.lock entry", () => {
  const dir = copyFixture("plan-bases");
  const images = join(dir, "images.ts");
  writeFileSync(images, readFileSync(images, "utf8").replace("golang:1.22", `golang@sha256:${"c".repeat(64)}`));
  const p = JSON.parse(mstage(dir, ["plan", "--offline", "--json"], newStore()).stdout) as JsonPlan;
  const img = p.stages.find((s) => s.name === "from-image")!;
  assert.equal(img.status, "new");
  assert.deepEqual(img.reasons, []);
});

test("a registry that cannot be reached leaves the tag unresolved, with a warning, and plan still answers", () => {
  const dir = copyFixture("plan-bases");
  const images = join(dir, "images.ts");
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  writeFileSync(images, readFileSync(images, "utf8").replace("docker.io/library/golang:1.22", "127.0.0.1:1/golang:1.22"));
  const r = mstage(dir, ["plan"], newStore());
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\+ from-image\s+new: base 127\.0\.0\.1:1\/golang:1\.22 not resolved yet \(run mstage up\)/);
  assert.match(r.stderr, /^warning: 127\.0\.0\.1:1\/golang:1\.22 not resolved: cannot connect to registry 127\.0\.0\.1:1 \(ECONNREFUSED\)/m);
});
