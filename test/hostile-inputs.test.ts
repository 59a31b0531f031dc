// Input from outside (oci() layouts, images.lock, state files, tarballs, the store's filesystem)
// crafted to break mstage: each case must end in one clear error naming what was wrong, never in
// "internal error (a bug in mstage)", and never read or write outside where it should.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mstage } from "./helpers/mstage-cli.ts";

const sha = (b: string | Buffer) => "sha256:" + createHash("sha256").update(b).digest("hex");

function project(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), "mstage-hostile-"));
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), body);
  }
  return dir;
}

function noInternalError(r: { stderr: string }): void {
  assert.doesNotMatch(r.stderr, /internal error|a bug in mstage|at .*\.m?[jt]s:\d+/, r.stderr);
}

/** An OCI layout at `dir` with one image, ref "b", whose manifest names `configDigest` as its config. */
function layoutWithConfig(dir: string, configDigest: string): void {
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: 100 },
    layers: [],
  });
  writeFileSync(join(dir, "blobs", "sha256", sha(manifest).slice(7)), manifest);
  writeFileSync(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha(manifest), size: manifest.length, annotations: { "org.opencontainers.image.ref.name": "b" } }],
    }),
  );
}

const OCI_PROJECT = `import { inline, oci, stage } from "mstage";
export const app = stage("app", { from: oci("./base", "b"), copy: { "/f": inline("x\\n") } });
`;

test("an oci() base whose manifest names its config sha256:../../../x.json is refused, naming the stage; the file is not read", () => {
  const dir = project({ "images.ts": OCI_PROJECT });
  try {
    layoutWithConfig(join(dir, "base"), "sha256:../../../x.json");
    // Where the path-like digest points (beside the layout): a valid config, so only the digest check can refuse it.
    writeFileSync(join(dir, "x.json"), JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
    const r = mstage(dir, ["--store", join(dir, "store"), "up", "-q"]);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.stderr, /app/);
    assert.match(r.stderr, /"sha256:\.\.\/\.\.\/\.\.\/x\.json", which is not a sha256 digest/);
    noInternalError(r);
    assert.ok(!existsSync(join(dir, "oci")), "no output was written");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an oci() index naming a manifest by a path-like digest is refused by plan and up alike", () => {
  const dir = project({ "images.ts": OCI_PROJECT });
  try {
    layoutWithConfig(join(dir, "base"), sha("{}"));
    const index = JSON.parse(readFileSync(join(dir, "base", "index.json"), "utf8"));
    index.manifests[0].digest = "sha256:../../index.json";
    writeFileSync(join(dir, "base", "index.json"), JSON.stringify(index));
    for (const cmd of ["plan", "up"]) {
      const r = mstage(dir, ["--store", join(dir, "store"), cmd, "-q"]);
      assert.equal(r.code, 1, `${cmd}: ${r.stderr}`);
      assert.match(r.stderr, /"sha256:\.\.\/\.\.\/index\.json", which is not a sha256 digest/, cmd);
      noInternalError(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("images.lock and .mstage/state.json digests that are not digests are errors naming the file", () => {
  const dir = project({
    "images.ts": `import { image, stage } from "mstage";\nexport const app = stage("app", { from: image("127.0.0.1:1/x:1"), cmd: ["/x"] });\n`,
    "images.lock": JSON.stringify({ images: { "127.0.0.1:1/x:1": "sha256:../../../etc/passwd" }, debian: {} }),
  });
  try {
    const lock = mstage(dir, ["--store", join(dir, "store"), "plan"]);
    assert.equal(lock.code, 1, lock.stderr);
    assert.match(lock.stderr, /images\.lock: images\["127\.0\.0\.1:1\/x:1"\] is "sha256:\.\.\/\.\.\/\.\.\/etc\/passwd", not a sha256 digest/);
    noInternalError(lock);

    rmSync(join(dir, "images.lock"));
    mkdirSync(join(dir, ".mstage"), { recursive: true });
    writeFileSync(join(dir, ".mstage", "state.json"), JSON.stringify({ version: 1, stages: { app: { layerKey: sha("k"), configKey: sha("c"), inputs: {}, builtAt: "", manifestDigest: "sha256:../../x" } } }));
    const state = mstage(dir, ["--store", join(dir, "store"), "up", "--offline"]);
    assert.equal(state.code, 1, state.stderr);
    assert.match(state.stderr, /state\.json is not a valid mstage state file \(stage app has manifestDigest "sha256:\.\.\/\.\.\/x", not a sha256 digest\)/);
    noInternalError(state);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
