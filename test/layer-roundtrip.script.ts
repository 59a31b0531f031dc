// Inside mstage's user namespace (see layer-userns.helper.ts): builds two stacked layers with real
// overlay mounts, commits them, and applies them back both ways. Prints JSON for the test to judge.
//   argv: WORKDIR
import { execFileSync } from "node:child_process";
import { chownSync, copyFileSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync, appendFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { applyLayer } from "../packages/runtime/src/layer/apply.ts";
import { commitLayerToStore } from "../packages/runtime/src/layer/commit.ts";
import { Store } from "../packages/runtime/src/store/store.ts";
import { ensureLayerExtracted } from "../packages/runtime/src/layer/extract.ts";
import { treeListing as listing } from "./helpers/listing.ts";

const work = process.argv[2];
const notes: string[] = [];
const onNote = (m: string) => notes.push(m);

function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8" });
}


function mountOverlay(lowers: string[], upper: string, wk: string, merged: string): void {
  mkdirSync(upper, { recursive: true });
  mkdirSync(wk, { recursive: true });
  mkdirSync(merged, { recursive: true });
  sh("mount", "-t", "overlay", "overlay", "-o", `userxattr,lowerdir=${lowers.join(":")},upperdir=${upper},workdir=${wk}`, merged);
}

function tarNames(file: string): string[] {
  return sh("tar", "-tf", file).split("\n").filter(Boolean);
}

const store = await Store.open(join(work, "store"));

// The base: a small busybox rootfs, as a plain directory lower.
const base = join(work, "base");
mkdirSync(join(base, "bin"), { recursive: true });
mkdirSync(join(base, "etc"), { recursive: true });
copyFileSync("/bin/busybox", join(base, "bin/busybox"));
symlinkSync("busybox", join(base, "bin/sh"));
writeFileSync(join(base, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n");

// Layer 1: create files and a directory.
const m = join(work, "merged");
mountOverlay([base], join(work, "u1"), join(work, "w1"), m);
writeFileSync(join(m, "created"), "one\n");
writeFileSync(join(m, "modified"), "before\n");
writeFileSync(join(m, "chowned"), "mine\n");
writeFileSync(join(m, "deleted"), "soon gone\n");
mkdirSync(join(m, "recreated/sub"), { recursive: true });
writeFileSync(join(m, "recreated/old"), "old\n");
writeFileSync(join(m, "recreated/sub/older"), "older\n");
mkdirSync(join(m, "srv/data"), { recursive: true, mode: 0o750 });
chownSync(join(m, "srv/data"), 1000, 1000);
sh("ln", join(m, "created"), join(m, "hardlink"));
sh("chmod", "4755", join(m, "created"));
sh("setfattr", "-n", "user.note", "-v", "kept", join(m, "modified"));
sh("umount", m);
const l1 = await commitLayerToStore(store, join(work, "u1"), { sourceDateEpoch: 0, onNote });
const e1 = await ensureLayerExtracted(store, l1.diffId, () => store.openBlob(l1.diffId), { onNote });

// Layer 2, on top of the extracted layer 1: modify, chown, delete, delete-and-recreate a dir.
mountOverlay([e1, base], join(work, "u2"), join(work, "w2"), m);
appendFileSync(join(m, "modified"), "after\n");
chownSync(join(m, "chowned"), 1000, 1000);
rmSync(join(m, "deleted"));
rmSync(join(m, "recreated"), { recursive: true });
mkdirSync(join(m, "recreated"));
writeFileSync(join(m, "recreated/new"), "new\n");
rmSync(join(m, "bin/sh"));
const expected = listing(m);
sh("umount", m);
const l2 = await commitLayerToStore(store, join(work, "u2"), { sourceDateEpoch: 0, onNote });
const again = await commitLayerToStore(store, join(work, "u2"), { sourceDateEpoch: 0, onNote });
// Layer 2 is not extracted from its tar: the upper dir it was committed from becomes the lower dir.
// It must look exactly like an extraction of the tar (compared with times; whiteouts by name only).
const e2 = store.adoptLayerDir(l2.diffId, join(work, "u2"), { sourceDateEpoch: 0 });
const fresh = join(work, "fresh");
mkdirSync(fresh);
await applyLayer(store.openBlob(l2.diffId), fresh, { mode: "overlay", onNote });
const timed = (dir: string) =>
  listing(dir).map((line) => {
    const p = line.split(" ")[0];
    const st = lstatSync(join(dir, p));
    return st.isCharacterDevice() ? `${p} whiteout` : `${line} ${st.mtimeMs}`;
  });
const adoptedLikeExtracted = JSON.stringify(timed(e2)) === JSON.stringify(timed(fresh));

// Way back 1: flatten base + layer 1 + layer 2 (merge mode) onto a copy of the base.
const flat = join(work, "flat");
sh("cp", "-a", base, flat);
await applyLayer(store.openBlob(l1.diffId), flat, { mode: "merge", onNote });
await applyLayer(Readable.from(readFileSync(store.blobPath(l2.diffId))), flat, { mode: "merge", onNote });

// Way back 2: the extracted layers as overlay lower dirs, read-only.
const ro = join(work, "ro");
mkdirSync(ro);
sh("mount", "-t", "overlay", "overlay", "-o", `userxattr,lowerdir=${e2}:${e1}:${base}`, ro);
const viaOverlay = listing(ro);
sh("umount", ro);

const opaque = sh("getfattr", "--absolute-names", "-n", "user.overlay.opaque", "--only-values", join(e2, "recreated"));

console.log(
  JSON.stringify({
    expected,
    viaMerge: listing(flat),
    viaOverlay,
    layer2Names: tarNames(store.blobPath(l2.diffId)),
    layer1Verbose: sh("tar", "--numeric-owner", "-tvf", store.blobPath(l1.diffId)),
    sameDigestTwice: again.diffId === l2.diffId,
    adoptedLikeExtracted,
    opaque,
    xattrAfterMerge: sh("getfattr", "--absolute-names", "-n", "user.note", "--only-values", join(flat, "modified")),
    whiteoutInExtracted: listing(e2).filter((l) => l.includes(" chr ")),
    notes,
  }),
);
// Files owned by mapped ids can only be removed from inside the namespace.
rmSync(work, { recursive: true, force: true });
