// A local tarball() base is a layer of its own, the file as it is: its digest is the image's first
// diff-id (a gzip file is that layer's blob), the stage's changes are a second layer, and two
// stages on the same tar share the one layer the store made of it, which a rebuild takes again
// without reading the tar. Root and mstage-test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { expectOk, projectWith, skopeoInspect, testUsers, tool } from "./up-harness.ts";

const IMAGES = `import { local, stage, tarball } from "mstage";
const shell = ["/bin/busybox", "sh", "-c"];
export const app = stage("app", { from: tarball(local("./rootfs.tar")), shell, run: "echo hi > /hi.txt" });
export const other = stage("other", { from: tarball(local("./rootfs.tar")), shell, run: "echo other > /other.txt" });
export const packed = stage("packed", { from: tarball(local("./rootfs.tar.gz")), cmd: ["/bin/busybox", "true"] });
`;

const sha256 = (b: Buffer) => "sha256:" + createHash("sha256").update(b).digest("hex");
const why = !existsSync("/bin/busybox") ? "busybox-static is not installed (/bin/busybox): run .ci/setup" : !tool("skopeo") ? "skopeo is missing: run .ci/setup" : undefined;

for (const user of testUsers()) {
  test(`a local tarball() base is its own layer, as ${user.name}`, { timeout: 5 * 60_000 }, async (t) => {
    if (user.skip ?? why) return t.skip(user.skip ?? why);
    const { project, store, mstage } = projectWith(t, user.name, "tarball-base", IMAGES);
    mkdirSync(join(project, "r/bin"), { recursive: true });
    copyFileSync("/bin/busybox", join(project, "r/bin/busybox"));
    execFileSync("tar", ["-C", join(project, "r"), "-cf", join(project, "rootfs.tar"), "bin"]);
    execFileSync("gzip", ["-kn", join(project, "rootfs.tar")]);
    execFileSync("chown", ["-R", `${user.name}:${user.name}`, project]);
    const tar = readFileSync(join(project, "rootfs.tar"));
    const gz = readFileSync(join(project, "rootfs.tar.gz"));

    const tarPhases = (stdout: string) => stdout.split("\n").filter((l) => l.includes('"phase":"tarball"')).length;
    const first = expectOk(await mstage(["up", "--sbom=false", "--json"]), "up");
    assert.equal(tarPhases(first.stdout), 2, "rootfs.tar is read once for app and other, rootfs.tar.gz once");
    const layout = join(project, "oci");
    const diffIds = (ref: string) => (skopeoInspect(layout, ref, true) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
    const blobs = (ref: string) => (skopeoInspect(layout, ref) as { Layers: string[] }).Layers;

    for (const ref of ["app", "other"]) {
      assert.equal(diffIds(ref)[0], sha256(tar), `${ref}: the tar is the first layer, as it is`);
      assert.equal(diffIds(ref).length, 2, `${ref}: the stage's changes are a layer of their own`);
    }
    const own = gunzipSync(readFileSync(join(layout, "blobs/sha256", blobs("app")[1]!.slice(7))));
    const names = execFileSync("tar", ["-t"], { input: own }).toString().split("\n").filter(Boolean);
    assert.ok(names.includes("hi.txt") && !names.some((n) => n.includes("busybox")), `app's own layer holds only its change: ${names.join(" ")}`);
    assert.deepEqual(blobs("app")[0], blobs("other")[0], "both stages export the same base layer blob");

    assert.deepEqual(diffIds("packed"), [sha256(tar)], "a gzip tar's layer is its uncompressed tar");
    assert.deepEqual(blobs("packed"), [sha256(gz)], "and its blob is the gzip file itself, not compressed again");

    // The store made one layer of the tar: its blob and one extracted dir, shared by both stages.
    const hex = sha256(tar).slice(7);
    assert.ok(existsSync(join(store, "blobs/sha256", hex)), "the plain tar is the layer's blob in the store");
    assert.ok(readdirSync(join(store, "layers")).includes(hex), "the tar's layer is extracted once, under its diff-id");

    // A rebuild on the unchanged tar takes the layer the store made of it, without reading the tar.
    const again = expectOk(await mstage(["up", "--sbom=false", "--json", "--rebuild", "app"]), "rebuild");
    assert.match(again.stdout, /"type":"stage-done","stage":"app","outcome":"built"/);
    assert.equal(tarPhases(again.stdout), 0, "the tar is not read again");
    assert.deepEqual(diffIds("app")[0], sha256(tar));
  });
}
