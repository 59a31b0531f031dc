// What a stage's commit runs besides itself (issue 16): one getfattr, and setfattr/mknod only for
// what normalising changes, each through the sandbox's small shell. A spawn of the builder's own
// large process cost 15-70 ms (115-210 ms with a 200 MiB heap under load), more than a small
// stage's whole commit. A file of its own: the tools are looked up once per process, and this
// test puts logging wrappers first on PATH before the first lookup.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../store/store.ts";
import { commitAndAdopt } from "./adopt.ts";
import { commitLayerToStore, ensureLayerTar } from "./commit.ts";
import { readTreeXattrs } from "./xattr.ts";

const isRoot = process.getuid?.() === 0;

/** An upper dir as overlayfs leaves it: a whiteout, an opaque dir (the privileged spelling), a copied-up dir's origin, a user xattr, a device the tar leaves out. */
function makeUpper(dir: string): void {
  mkdirSync(join(dir, "etc/old"), { recursive: true });
  writeFileSync(join(dir, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  writeFileSync(join(dir, "etc/old/y"), "new\n");
  execFileSync("mknod", [join(dir, "etc/gone"), "c", "0", "0"]);
  execFileSync("mknod", [join(dir, "etc/null"), "c", "1", "3"]);
  execFileSync("setfattr", ["-n", "trusted.overlay.opaque", "-v", "y", join(dir, "etc/old")]);
  execFileSync("setfattr", ["-n", "user.overlay.origin", "-v", "0x00fb", join(dir, "etc")]);
  execFileSync("setfattr", ["-n", "user.keep", "-v", "kept", join(dir, "etc/passwd")]);
}

test("a stage's commit runs getfattr, setfattr and mknod from the small shell, never from this process, and normalises the upper dir", { skip: !isRoot && "needs root (mknod, trusted.* xattrs)" }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-adopt-tools-"));
  const path = process.env.PATH;
  try {
    const bin = join(dir, "bin");
    const log = join(dir, "calls");
    mkdirSync(bin);
    for (const tool of ["getfattr", "setfattr", "mknod"]) {
      const real = execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim();
      writeFileSync(join(bin, tool), `#!/bin/sh\necho "${tool} $PPID" >>${log}\nexec ${real} "$@"\n`);
      chmodSync(join(bin, tool), 0o755);
    }
    process.env.PATH = `${bin}:${path}`;

    const store = await Store.open(join(dir, "store"));
    const upper = store.tmpDir("upper");
    makeUpper(upper);
    makeUpper(join(dir, "copy"));
    const direct = await commitLayerToStore(await Store.open(join(dir, "direct")), join(dir, "copy"), { sourceDateEpoch: 1_500_000_000 });
    rmSync(log, { force: true });
    const notes: string[] = [];
    const layer = await commitAndAdopt(store, upper, { sourceDateEpoch: 1_500_000_000, onNote: (m) => notes.push(m) });

    const calls = readFileSync(log, "utf8").trim().split("\n");
    assert.deepEqual(calls.map((c) => c.split(" ")[0]).sort(), ["getfattr", "mknod", "setfattr", "setfattr", "setfattr"], "one getfattr; one setfattr per xattr removed and one for the opaque marks; one mknod");
    for (const c of calls) assert.notEqual(Number(c.split(" ")[1]), process.pid, `${c}: spawned by this process, not by the small shell`);

    assert.equal(layer.diffId, direct.diffId, "the same tar as a direct commit of the upper dir");
    assert.ok(!store.hasBlob(layer.diffId) && store.hasLayerDir(layer.diffId), "adopted: no tar written, the dir is the layer");
    assert.deepEqual(notes, ["not in the layer: 1 socket or device file(s) (etc/null)"]);
    const dirOf = store.layerDir(layer.diffId);
    const attrs = await readTreeXattrs(dirOf);
    const names = (rel: string) => (attrs.get(rel) ?? []).map(([n, v]) => `${n}=${v.toString()}`).sort();
    assert.deepEqual(names("etc/old"), ["user.overlay.opaque=y"], "the opaque dir in mstage's own spelling only");
    assert.deepEqual(names("etc"), [], "no overlayfs origin left");
    assert.deepEqual(names("etc/passwd"), ["user.keep=kept"], "a user xattr is kept");
    assert.ok(!existsSync(join(dirOf, "etc/null")), "the device is gone from the layer dir");
    const gone = lstatSync(join(dirOf, "etc/gone"));
    assert.ok(gone.isCharacterDevice() && gone.rdev === 0 && gone.mtimeMs === 1_500_000_000_000, "the whiteout is a 0/0 device with the tar's time");
    assert.equal(lstatSync(join(dirOf, "etc")).mtimeMs, 1_500_000_000_000, "its dir has the tar's time again after the whiteout was relinked");

    await ensureLayerTar(store, layer.diffId);
    assert.ok(store.hasBlob(layer.diffId), "the tar written again from the layer dir has the layer's digest");
  } finally {
    process.env.PATH = path;
    rmSync(dir, { recursive: true, force: true });
  }
});
