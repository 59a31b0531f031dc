// Compression ahead of export (a tarball() base's layer, while the build runs): the same blob as
// compressing on export, made at the lowest priority until export waits for it, and a job killed
// halfway leaves nothing that a later export would trust.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { digestHex, type Digest } from "../oci/digest.ts";
import { Store } from "../store/store.ts";
import { withStore } from "../store/testing.ts";
import { compressLayer, compressLayerAhead } from "./compress.ts";

/** 12 MiB that deflate neither skips through nor gives up on: text lines with counters in them. */
function layerBytes(): Buffer {
  const lines: string[] = [];
  for (let i = 0; lines.length < 200_000; i++) lines.push(`usr/lib/go/src/pkg${i % 977}/file${i}.go ${(i * 2654435761) % 4294967296} mode=0644\n`);
  return Buffer.from(lines.join("")).subarray(0, 12 << 20);
}

/** Nice values of this process's threads and of its child processes' threads. */
function niceValues(): number[] {
  const nice = (stat: string) => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  const out: number[] = [];
  for (const tid of readdirSync("/proc/self/task")) out.push(nice(readFileSync(`/proc/self/task/${tid}/stat`, "utf8")));
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) !== process.pid) continue;
      for (const tid of readdirSync(`/proc/${pid}/task`)) out.push(nice(readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

for (const format of ["gzip", "zstd"] as const) {
  test(`a layer compressed ahead (${format}) runs at nice 19 until export waits for it, and is the blob a direct compression makes`, async () => {
    const bytes = layerBytes();
    let direct!: { digest: Digest; size: number };
    await withStore(async (store) => {
      const { digest } = await store.writeBlob(bytes);
      direct = await compressLayer(store, digest, format);
    });
    await withStore(async (store) => {
      const { digest } = await store.writeBlob(bytes);
      compressLayerAhead(store, digest, format, bytes.length);
      // Seen at the lowest priority while it runs (a thread of this process for gzip, zstd's for zstd).
      let low = false;
      for (let i = 0; i < 200 && !low; i++) {
        low = niceValues().includes(19);
        if (!low) await new Promise((r) => setImmediate(r));
      }
      assert.ok(low, "a thread at nice 19 while compressing ahead");
      const progress: number[] = [];
      const got = await compressLayer(store, digest, format, { onProgress: (done) => progress.push(done) });
      assert.deepEqual({ digest: got.digest, size: got.size }, { digest: direct.digest, size: direct.size });
      assert.equal(progress.at(-1), bytes.length, "export's progress reaches the whole layer");
      assert.deepEqual(store.compressedOf(digest, format), { digest: direct.digest, size: direct.size });
      // Done once: another export reuses the blob.
      assert.equal((await compressLayer(store, digest, format)).digest, direct.digest);
    });
  });
}

test("a process killed while it compresses a layer ahead leaves no blob and no record, only a temp file that gc clears", async () => {
  await withStore(async (store, dir) => {
    // A sparse 64 GiB "layer" under a made-up digest: far more than the test waits to compress.
    const fake = `sha256:${"ab".repeat(32)}` as Digest;
    mkdirSync(join(store.root, "blobs/sha256"), { recursive: true });
    writeFileSync(store.blobPath(fake), "");
    truncateSync(store.blobPath(fake), 64 * 1024 ** 3);
    const script = join(dir, "killed.mts");
    writeFileSync(
      script,
      `import { Store } from ${JSON.stringify(new URL("../store/store.ts", import.meta.url).pathname)};
       import { compressLayerAhead } from ${JSON.stringify(new URL("./compress.ts", import.meta.url).pathname)};
       const store = await Store.open(process.argv[2]);
       compressLayerAhead(store, process.argv[3], "gzip");
       setTimeout(() => console.log("compressing"), 500);`,
    );
    const p = spawn(process.execPath, ["--import", "tsx", script, store.root, fake], { stdio: ["ignore", "pipe", "inherit"] });
    const said = await new Promise<string>((resolve) => p.stdout.once("data", (d: Buffer) => resolve(d.toString())));
    p.kill("SIGKILL");
    await new Promise((r) => p.once("close", r));
    assert.equal(said.trim(), "compressing", "killed while compressing");

    const again = await Store.open(store.root);
    assert.equal(again.compressedOf(fake, "gzip"), null, "no gzip recorded for the layer");
    assert.deepEqual(readdirSync(join(store.root, "blobs/sha256")), [digestHex(fake)], "no blob but the layer's own");
    assert.equal(readdirSync(join(store.root, "tmp")).length, 1, "the half blob is a temp file");
    const r = await again.gc();
    assert.equal(r.removedTmp, 1);
  });
});
