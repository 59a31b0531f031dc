// A stage's upper dir, once committed, becomes its layer's extracted dir (issue 16): a stage that
// copies onto it mounts the very dir instead of extracting the tar just written. The adopted dir
// must be what extracting that tar gives, entry by entry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { expectOk, projectFrom, skopeoInspect, testUsers } from "./up-harness.ts";
import { runInUserNamespace } from "./layer-userns.helper.ts";

const script = new URL("./layer-adopt.script.ts", import.meta.url).pathname;

// Both ways a commit lists its tree: the native lister, which hashes the tar while it still scans
// (layer/commit.ts digestScanning), and Node's fs with getfattr, which scans first. (a's layer
// differs from run to run: it records an inode number.)
const LISTERS = [
  ["native lister", ""],
  ["MSTAGE_LISTDIR=js", "js"],
] as const;

for (const user of testUsers()) for (const [lister, listdir] of LISTERS) {
  test(`a committed upper dir is kept as its layer and equals a fresh extraction of the tar (${user.name}, ${lister})`, { timeout: 5 * 60_000 }, async (t) => {
    if (user.skip) return t.skip(user.skip);
    if (!existsSync("/bin/busybox")) return t.skip("busybox-static is not installed (/bin/busybox): run .ci/setup");
    const { project, store, mstage } = projectFrom(t, user.name, "layer-adopt");
    expectOk(await mstage(["up", "--progress", "plain"], { env: { MSTAGE_LISTDIR: listdir } }), "up");

    const diffIds = (skopeoInspect(join(project, "oci"), "b", true) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
    assert.equal(diffIds.length, 3, "base, a and b each add a layer");
    const hex = diffIds[1]!.slice("sha256:".length);
    const layerDir = join(store, "layers", hex);
    assert.ok(existsSync(layerDir), "a's layer is in the store's extracted layers");

    // The commit wrote no tar; the export gzipped the tar written again from the layer dir.
    assert.ok(!existsSync(join(store, "blobs/sha256", hex)), "no tar of a's layer in the store");
    const gz = (skopeoInspect(join(project, "oci"), "b") as { Layers: string[] }).Layers[1]!;
    const r = runInUserNamespace(script, [layerDir, join(project, "oci/blobs/sha256", gz.slice("sha256:".length))], user.name === "root" ? "invoker" : "mstage-test");
    t.after(() => rmSync(r.tmp, { recursive: true, force: true }));
    assert.equal(r.status, 0, `layer-adopt script failed:\n${r.stderr}`);
    const got = JSON.parse(r.stdout) as { adopted: string[]; extracted: string[]; sameInode: boolean; diffId: string };
    assert.equal(got.diffId, diffIds[1], "the exported layer is the tar its diff-id names");
    assert.ok(got.sameInode, "b's base layer is a's upper dir itself, not a re-extraction");
    assert.deepEqual(got.adopted, got.extracted);
    const paths = got.adopted.map((l) => l.split(" ")[0]);
    for (const p of ["made/fifo", "made/sub/link", "bin/ls", "srv/keep/k", "srv/old/y", "etc/passwd"]) assert.ok(paths.includes(p), `${p} in the layer`);
    for (const p of ["made/null", "dev", "proc", "sys", "etc/hosts", "etc/resolv.conf", "run", "tmp"]) assert.ok(!paths.includes(p), `${p} is not in the layer`);
    assert.match(got.adopted.find((l) => l.startsWith("srv/old "))!, /user\.overlay\.opaque=79/, "the re-created dir is opaque");
    assert.ok(!got.adopted.some((l) => /overlay\.(origin|impure)/.test(l)), "no overlayfs bookkeeping left");
  });
}
