// A stage's commit keeps no tar (issue 16): the upper dir becomes the layer and only its digest is
// taken. The tar written later from that dir must be the very tar a direct commit writes, and a dir
// changed since must never be exported or trusted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ImageConfig } from "../oci/types.ts";
import { Store } from "../store/store.ts";
import { commitAndAdopt } from "./adopt.ts";
import { commitLayerToStore, ensureLayerTar } from "./commit.ts";
import { compressLayer } from "./compress.ts";
import { layerMatchesTar } from "./verify.ts";

const config: ImageConfig = { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } };

/** A tree with what a layer holds: dirs, files (one big, one empty), a hardlink, a symlink, a fifo, odd modes and times. */
function makeTree(dir: string): void {
  mkdirSync(join(dir, "etc/sub"), { recursive: true });
  writeFileSync(join(dir, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  writeFileSync(join(dir, "etc/empty"), "");
  writeFileSync(join(dir, "big"), Buffer.alloc(3 << 20, 7));
  linkSync(join(dir, "etc/passwd"), join(dir, "etc/sub/hard"));
  symlinkSync("../passwd", join(dir, "etc/sub/link"));
  execFileSync("mkfifo", ["-m", "0640", join(dir, "fifo")]);
  writeFileSync(join(dir, "etc/secret"), "s\n", { mode: 0o600 });
  utimesSync(join(dir, "etc/passwd"), 1000, 1000);
  utimesSync(join(dir, "big"), 2_000_000_000, 2_000_000_000);
}

async function withDirs(fn: (dir: string, lazy: Store, eager: Store) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mstage-adopt-"));
  try {
    await fn(dir, await Store.open(join(dir, "lazy")), await Store.open(join(dir, "eager")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a stage's commit writes no tar; the tar written later from its layer dir is byte for byte a direct commit's", async () => {
  await withDirs(async (dir, lazy, eager) => {
    for (const name of ["upper", "copy"]) makeTree(join(dir, name));
    const direct = await commitLayerToStore(eager, join(dir, "copy"), { sourceDateEpoch: 1_500_000_000 });
    const upper = lazy.tmpDir("upper");
    execFileSync("cp", ["-a", join(dir, "upper") + "/.", upper]);
    const layer = await commitAndAdopt(lazy, upper, { sourceDateEpoch: 1_500_000_000 });

    assert.deepEqual(layer, direct, "same diff-id and size as the tar a direct commit writes");
    assert.ok(!lazy.hasBlob(layer.diffId), "no tar in the store after the commit");
    assert.ok(!existsSync(upper) && lazy.hasLayerDir(layer.diffId), "the upper dir is the layer's extracted dir");

    await ensureLayerTar(lazy, layer.diffId);
    assert.ok(readFileSync(lazy.blobPath(layer.diffId)).equals(readFileSync(eager.blobPath(direct.diffId))), "the tar written again is the same bytes");

    const fromDir = await Store.open(join(dir, "gzip-from-dir"));
    const again = fromDir.tmpDir("upper");
    execFileSync("cp", ["-a", join(dir, "upper") + "/.", again]);
    await commitAndAdopt(fromDir, again, { sourceDateEpoch: 1_500_000_000 });
    const sizes: number[] = [];
    const gz = await compressLayer(fromDir, layer.diffId, "gzip", { size: layer.size, onProgress: (_done, total) => sizes.push(total) });
    assert.deepEqual(gz, await compressLayer(eager, direct.diffId, "gzip"), "gzip straight from the layer dir is the gzip of the tar");
    assert.ok(!fromDir.hasBlob(layer.diffId), "gzip needs no tar in the store");
    assert.deepEqual([...new Set(sizes)], [layer.size], "progress counts against the layer's size");
  });
});

test("a layer dir changed after a stage's commit is never exported, and gc --verify removes it with the results that need it", async () => {
  await withDirs(async (dir, store) => {
    const upper = store.tmpDir("upper");
    makeTree(upper);
    const layer = await commitAndAdopt(store, upper, { sourceDateEpoch: 0 });
    const check = layerMatchesTar(store);
    assert.equal(await check(layer.diffId, store.layerDir(layer.diffId)), true, "an untouched layer dir verifies without a tar");
    await store.putResult("sha256:" + "a".repeat(64), { key: "sha256:" + "a".repeat(64), layers: [layer], config, history: [], created: new Date().toISOString(), stage: "app" });

    writeFileSync(join(store.layerDir(layer.diffId), "etc/passwd"), "root:x:0:0::/root:/bin/bash\n");
    for (const format of ["gzip", "zstd"] as const) {
      await assert.rejects(compressLayer(store, layer.diffId, format), /its files in .* no longer give its tar .*mstage gc --verify/, format);
      assert.equal(store.compressedOf(layer.diffId, format), null, `no ${format} recorded`);
    }
    assert.ok(!store.hasBlob(layer.diffId), "no tar of the changed files is stored as the layer");

    const report = await store.verify(check);
    assert.deepEqual(report.corruptLayers, [layer.diffId]);
    assert.deepEqual(report.droppedResults.map((r) => r.stage), ["app"], "the result needing the layer goes: no other copy of it is left");
    assert.ok(!store.hasLayerDir(layer.diffId));
    await assert.rejects(ensureLayerTar(store, layer.diffId), /not in the store .*neither its tar nor its files/);
    void dir;
  });
});

test("a stage's commit killed while it hashes leaves no layer and no blob, only its upper dir in tmp/, which gc clears", async () => {
  await withDirs(async (dir, store) => {
    const src = join(dir, "src");
    mkdirSync(src);
    makeTree(src);
    // Sparse: reading and hashing its 64 GiB of holes takes far longer than the test waits.
    writeFileSync(join(src, "huge"), "");
    truncateSync(join(src, "huge"), 64 * 1024 ** 3);
    const script = join(dir, "killed.mts");
    // The upper dir is the dead process's, as a build's work dir is.
    writeFileSync(
      script,
      `import { execFileSync } from "node:child_process";
       import { Store } from ${JSON.stringify(new URL("../store/store.ts", import.meta.url).pathname)};
       import { commitAndAdopt } from ${JSON.stringify(new URL("./adopt.ts", import.meta.url).pathname)};
       const store = await Store.open(process.argv[2]);
       const upper = store.tmpDir("upper");
       execFileSync("cp", ["-a", "--sparse=always", process.argv[3] + "/.", upper]);
       setTimeout(() => console.log("hashing"), 500);
       await commitAndAdopt(store, upper, { sourceDateEpoch: 0 });
       console.log("done");`,
    );
    const p = spawn(process.execPath, ["--import", "tsx", script, store.root, src], { stdio: ["ignore", "pipe", "inherit"] });
    const said = await new Promise<string>((resolve) => p.stdout.once("data", (d: Buffer) => resolve(d.toString())));
    p.kill("SIGKILL");
    await new Promise((r) => p.once("close", r));
    assert.equal(said.trim(), "hashing", "killed while committing");

    assert.deepEqual(readdirSync(join(store.root, "layers")), [], "nothing under layers/");
    assert.deepEqual(readdirSync(join(store.root, "blobs/sha256")), [], "nothing under blobs/");
    assert.equal(readdirSync(join(store.root, "tmp")).length, 1, "the upper dir is still in tmp/");
    const r = await store.gc();
    assert.equal(r.removedTmp, 1);
    assert.deepEqual(readdirSync(join(store.root, "tmp")), []);
  });
});
