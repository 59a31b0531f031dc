import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { linkSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { withStore } from "../store/testing.ts";
import { applyLayer } from "./apply.ts";
import { commitLayerToStore } from "./commit.ts";

function tarList(file: string, ...flags: string[]): string[] {
  return execFileSync("tar", ["--numeric-owner", ...flags, "-tvf", file], { encoding: "utf8" }).split("\n").filter(Boolean);
}

/** The same tree, written in the given order of names and with the given mtime. */
function makeTree(dir: string, order: string[], mtime: number): void {
  mkdirSync(dir);
  for (const name of order) {
    if (name.endsWith("/")) mkdirSync(join(dir, name), { recursive: true });
    else writeFileSync(join(dir, name), `content of ${name}\n`);
  }
  for (const name of [...order].reverse()) utimesSync(join(dir, name), mtime, mtime);
}

test("commit sorts entries by byte order of names, directory by directory, and is reproducible", async () => {
  await withStore(async (store, dir) => {
    const names = ["b/", "B", "a-b", "a/", "a/z", "a/Z", "a/_", "é", "e"];
    makeTree(join(dir, "one"), names, 2_000_000_000);
    makeTree(join(dir, "two"), [...names].reverse().sort((x, y) => (x.endsWith("/") ? -1 : y.endsWith("/") ? 1 : 0)), 1_500_000_000);
    const one = await commitLayerToStore(store, join(dir, "one"), { sourceDateEpoch: 0 });
    const two = await commitLayerToStore(store, join(dir, "two"), { sourceDateEpoch: 0 });
    assert.equal(one.diffId, two.diffId, "same files, other creation order and times: same diff-id");
    assert.equal(one.size, readFileSync(store.blobPath(one.diffId)).length);
    const order = execFileSync("tar", ["-tf", store.blobPath(one.diffId)], { encoding: "utf8" }).split("\n").filter(Boolean);
    assert.deepEqual(order, ["B", "a/", "a/Z", "a/_", "a/z", "a-b", "b/", "e", "é"]);
  });
});

test("commit clamps mtimes to SOURCE_DATE_EPOCH and keeps older ones", async () => {
  await withStore(async (store, dir) => {
    const up = join(dir, "up");
    mkdirSync(up);
    writeFileSync(join(up, "old"), "o");
    writeFileSync(join(up, "new"), "n");
    utimesSync(join(up, "old"), 1000, 1000);
    utimesSync(join(up, "new"), 1_900_000_000, 1_900_000_000);
    const l = await commitLayerToStore(store, up, { sourceDateEpoch: 1_600_000_000 });
    const lines = tarList(store.blobPath(l.diffId), "--full-time");
    assert.match(lines.find((x) => x.endsWith(" old"))!, /1970-01-01 00:16:40/);
    assert.match(lines.find((x) => x.endsWith(" new"))!, /2020-09-13 12:26:40/);
  });
});

test("commit writes long names, long symlink targets, hardlinks and binary xattrs that GNU tar and apply read back", async () => {
  await withStore(async (store, dir) => {
    const up = join(dir, "up");
    const deep = "d".repeat(120) + "/" + "e".repeat(120);
    mkdirSync(join(up, deep), { recursive: true });
    const longFile = join(deep, "f".repeat(200));
    writeFileSync(join(up, longFile), "long\n");
    symlinkSync("t".repeat(300), join(up, "longlink"));
    writeFileSync(join(up, "orig"), "shared\n");
    linkSync(join(up, "orig"), join(up, "twin"));
    writeFileSync(join(up, "caps"), "x");
    const binary = Buffer.from([0x01, 0x00, 0xff, 0x80, 0x7f]);
    execFileSync("setfattr", ["-n", "user.bin", "-v", "0x" + binary.toString("hex"), join(up, "caps")]);
    execFileSync("setfattr", ["-n", "user.overlay.origin", "-v", "0x00", join(up, "caps")]);
    const l = await commitLayerToStore(store, up, { sourceDateEpoch: 0 });

    const gnu = execFileSync("tar", ["-tf", store.blobPath(l.diffId)], { encoding: "utf8" }).split("\n");
    assert.ok(gnu.includes(longFile), "GNU tar sees the full long name (pax path)");
    const verbose = tarList(store.blobPath(l.diffId));
    assert.ok(verbose.some((x) => x.endsWith("longlink -> " + "t".repeat(300))), "full symlink target (pax linkpath)");
    assert.ok(verbose.some((x) => x.startsWith("h") && x.endsWith("twin link to orig")), "second name of a file is a tar hardlink");

    const raw = readFileSync(store.blobPath(l.diffId));
    assert.ok(raw.includes("SCHILY.xattr.user.bin="), "xattrs as SCHILY.xattr pax records");
    assert.ok(!raw.includes("user.overlay."), "overlay's private xattrs are dropped");

    const out = join(dir, "out");
    mkdirSync(out);
    await applyLayer(Readable.from(readFileSync(store.blobPath(l.diffId))), out, { mode: "merge" });
    assert.equal(readFileSync(join(out, longFile), "utf8"), "long\n");
    const attrs = execFileSync("getfattr", ["-d", "-m", "-", "-e", "hex", "--absolute-names", join(out, "caps")], { encoding: "utf8" });
    assert.match(attrs, /user\.bin=0x0100ff807f/, "binary xattr values survive commit and apply byte for byte");
  });
});
