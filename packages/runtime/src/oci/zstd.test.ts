import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../store/store.ts";
import { zstdBlob } from "./zstd.ts";

test("zstd blobs are the same bytes for 1, 2 and 8 threads and repeated runs, and zstd -d gives the layer back", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-zstd-"));
  try {
    const store = await Store.open(join(dir, "store"));
    // Over zstd's multithreaded job size at level 3 (a few MiB), so the threads really split it.
    const data = Buffer.concat(Array.from({ length: 24 }, (_, i) => Buffer.from(`${i} `.repeat(200_000 + i * 1000))));
    const { digest: layer } = await store.writeBlob(data);
    const results = [];
    for (const threads of [1, 2, 8, 2]) results.push(await zstdBlob(store, layer, { threads }));
    for (const r of results) assert.deepEqual(r, results[0]);
    const back = spawnSync("zstd", ["-d", "-c", "-q"], { input: readFileSync(store.blobPath(results[0]!.digest)), maxBuffer: 1 << 28 });
    assert.equal(back.status, 0, String(back.stderr));
    assert.ok(back.stdout.equals(data));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a small layer that zstd compresses before its blob file is open still gives its bytes (never an empty blob)", async () => {
  // zstd exits within milliseconds here; before heldStdout() Node's flushStdio discarded the output
  // of one run in ten to a hundred, and the layer became an empty blob with exit code 0.
  const dir = mkdtempSync(join(tmpdir(), "mstage-zstd-small-"));
  try {
    const store = await Store.open(join(dir, "store"));
    const { digest: layer } = await store.writeBlob(Buffer.from("hello.txt\n".repeat(200)));
    const first = await zstdBlob(store, layer, { threads: 2 });
    assert.ok(first.size > 0);
    for (let i = 0; i < 400; i++) assert.deepEqual(await zstdBlob(store, layer, { threads: 2 }), first, `run ${i}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
