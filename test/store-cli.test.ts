// `mstage ls` and `mstage gc` on a real store, through the built CLI, as root and as an
// unprivileged user whose store holds files of mapped ids (gc must enter the user namespace).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkInUserNamespace, userMissing } from "./layer-userns.helper.ts";

const root = new URL("..", import.meta.url).pathname;
const bin = join(root, "packages/cli/bin/mstage.mjs");
const populate = join(root, "test/store-populate.script.ts");

function mstage(args: string[], as: "invoker" | "mstage-test", home: string) {
  const cmd = as === "mstage-test" ? ["setpriv", "--reuid", "mstage-test", "--regid", "mstage-test", "--init-groups", process.execPath, bin] : [process.execPath, bin];
  const r = spawnSync(cmd[0], [...cmd.slice(1), ...args], { encoding: "utf8", env: { ...process.env, HOME: home, TMPDIR: home, NO_COLOR: "1" }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const as of ["invoker", "mstage-test"] as const) {
  test(`mstage ls lists results with sizes and ages; mstage gc removes unreferenced blobs, then least recently used results (${as})`, (t) => {
    const why = userMissing(as);
    if (why) return t.skip(why);
    checkInUserNamespace(populate, [], as, (made) => {
      assert.equal(made.status, 0, made.stderr);
      const { store } = JSON.parse(made.stdout) as { store: string };

      const ls = mstage(["--store", store, "ls"], as, made.tmp);
      assert.equal(ls.status, 0, ls.stderr);
      assert.match(ls.stdout, /^KEY +STAGE +PROJECT +LAYERS +LAYER +IMAGE +BUILT +USED$/m);
      assert.match(ls.stdout, /^[0-9a-f]{12} +(build|app) +\/src\/project +1 +\d+(\.\d+)? kB +\d+(\.\d+)? kB +\d+s ago +\d+s ago$/m);
      assert.match(ls.stdout, /2 result\(s\)/);

      const dry = mstage(["--store", store, "gc", "--dry-run"], as, made.tmp);
      assert.equal(dry.status, 0, dry.stderr);
      assert.match(dry.stdout, /dry run: would remove 0 result\(s\), 0 extracted layer\(s\), 1 blob\(s\)/);
      assert.equal(readdirSync(join(store, "blobs/sha256")).length, 3, "a dry run removes nothing");

      const gc = mstage(["--store", store, "gc"], as, made.tmp);
      assert.equal(gc.status, 0, gc.stderr);
      assert.match(gc.stdout, /removed 0 result\(s\), 0 extracted layer\(s\), 1 blob\(s\)/);
      assert.equal(readdirSync(join(store, "blobs/sha256")).length, 2);

      const all = mstage(["--store", store, "gc", "--max-size", "0"], as, made.tmp);
      assert.equal(all.status, 0, all.stderr);
      assert.match(all.stdout, /removed 2 result\(s\), 2 extracted layer\(s\), 2 blob\(s\)/);
      assert.deepEqual(readdirSync(join(store, "layers")), [], "extracted layers with files of mapped ids are gone");
      assert.deepEqual(readdirSync(join(store, "results")), []);
      assert.match(mstage(["--store", store, "ls"], as, made.tmp).stdout, /no stages in the store/);
    });
  });
}

test("mstage ls shows the project's outputs (refs of ./oci beside images.ts) with digests and sizes", () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-ls-"));
  try {
    writeFileSync(join(dir, "images.ts"), "export {};\n");
    const oci = join(dir, "oci");
    mkdirSync(join(oci, "blobs/sha256"), { recursive: true });
    const manifest = JSON.stringify({ schemaVersion: 2, config: { size: 1000 }, layers: [{ size: 2_000_000 }, { size: 500_000 }] });
    const hex = "a".repeat(64);
    writeFileSync(join(oci, "blobs/sha256", hex), manifest);
    writeFileSync(join(oci, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(
      join(oci, "index.json"),
      JSON.stringify({ schemaVersion: 2, manifests: [{ digest: `sha256:${hex}`, size: manifest.length, annotations: { "org.opencontainers.image.ref.name": "hello" } }] }),
    );
    const r = mstage(["-f", join(dir, "images.ts"), "--store", join(dir, "store"), "ls"], "invoker", dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^REF +DIGEST +SIZE +WRITTEN +ATTESTATIONS$/m);
    assert.match(r.stdout, new RegExp(`^hello +sha256:a{12} +2\\.50 MB +\\d+s ago +-$`, "m"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
