// A stage's upper dir, once committed, becomes its layer's extracted dir (issue 16): a stage that
// copies onto it mounts the very dir instead of extracting the tar just written. The adopted dir
// must be what extracting that tar gives, entry by entry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { expectOk, projectWith, skopeoInspect, testUsers } from "./up-harness.ts";
import { runInUserNamespace } from "./layer-userns.helper.ts";

const script = new URL("./layer-adopt.script.ts", import.meta.url).pathname;

const IMAGES = `import { inline, local, scratch, stage } from "mstage";
const base = stage("base", {
  from: scratch(),
  copy: {
    "/bin/busybox": local("/bin/busybox", { mode: 0o755 }),
    "/etc/passwd": inline("root:x:0:0:root:/root:/bin/sh\\n"),
    "/srv/old/x": inline("x\\n"),
    "/srv/keep/k": inline("k\\n"),
  },
  shell: ["/bin/busybox", "sh", "-c"],
  run: "/bin/busybox --install -s /bin",
});
// Creates, hardlinks, chmods, chowns, deletes (whiteouts), re-creates a dir (opaque), copies up a
// base file (overlayfs marks it with its origin), makes a fifo and (as root) a device, which the tar leaves out.
const a = stage("a", {
  from: base,
  run: [
    "mkdir -p /made/sub && echo one > /made/file && ln /made/file /made/sub/link && stat -c %i /made/file > /made/ino",
    "chmod 4755 /made/file && echo c > /made/owned && chown 1000:1000 /made/owned && chmod 750 /made/sub",
    "rm /bin/ls /srv/keep/k && rm -rf /srv/old && mkdir /srv/old && echo new > /srv/old/y",
    "echo 'nobody:x:65534:65534::/:/bin/sh' >> /etc/passwd && mkfifo /made/fifo && (mknod /made/null c 1 3 || true)",
  ],
});
export const b = stage("b", { from: a, copy: { "/b.txt": inline("b\\n") } });
`;

for (const user of testUsers()) {
  test(`a committed upper dir is kept as its layer and equals a fresh extraction of the tar (${user.name})`, { timeout: 5 * 60_000 }, async (t) => {
    if (user.skip) return t.skip(user.skip);
    if (!existsSync("/bin/busybox")) return t.skip("busybox-static is not installed (/bin/busybox): run .ci/setup");
    const { project, store, mstage } = projectWith(t, user.name, "adopt", IMAGES);
    expectOk(await mstage(["up", "--progress", "plain"]), "up");

    const diffIds = (skopeoInspect(join(project, "oci"), "b", true) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
    assert.equal(diffIds.length, 3, "base, a and b each add a layer");
    const hex = diffIds[1]!.slice("sha256:".length);
    const layerDir = join(store, "layers", hex);
    assert.ok(existsSync(layerDir), "a's layer is in the store's extracted layers");

    const r = runInUserNamespace(script, [layerDir, join(store, "blobs/sha256", hex)], user.name === "root" ? "invoker" : "mstage-test");
    t.after(() => rmSync(r.tmp, { recursive: true, force: true }));
    assert.equal(r.status, 0, `layer-adopt script failed:\n${r.stderr}`);
    const got = JSON.parse(r.stdout) as { adopted: string[]; extracted: string[]; sameInode: boolean };
    assert.ok(got.sameInode, "b's base layer is a's upper dir itself, not a re-extraction");
    assert.deepEqual(got.adopted, got.extracted);
    const paths = got.adopted.map((l) => l.split(" ")[0]);
    for (const p of ["made/fifo", "made/sub/link", "bin/ls", "srv/keep/k", "srv/old/y", "etc/passwd"]) assert.ok(paths.includes(p), `${p} in the layer`);
    for (const p of ["made/null", "dev", "proc", "sys", "etc/hosts", "etc/resolv.conf", "run", "tmp"]) assert.ok(!paths.includes(p), `${p} is not in the layer`);
    assert.match(got.adopted.find((l) => l.startsWith("srv/old "))!, /user\.overlay\.opaque=79/, "the re-created dir is opaque");
    assert.ok(!got.adopted.some((l) => /overlay\.(origin|impure)/.test(l)), "no overlayfs bookkeeping left");
  });
}
