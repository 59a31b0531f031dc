import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { watchTargets, type ChangeBatch } from "./watcher.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a burst of saves within the debounce window is reported as one change", async () => {
  const dir = await mkdtemp(join(tmpdir(), "mstage-watch-"));
  try {
    await mkdir(join(dir, "src"));
    await writeFile(join(dir, "images.ts"), "x");
    await writeFile(join(dir, "src", "a.go"), "a");
    await writeFile(join(dir, "src", "skip.log"), "a");
    const batches: ChangeBatch[] = [];
    const w = watchTargets(
      [{ path: join(dir, "images.ts") }, { path: join(dir, "src"), ignored: (p) => p.endsWith(".log") }],
      (b) => batches.push(b),
    );
    await sleep(300); // let the watcher settle
    await writeFile(join(dir, "src", "a.go"), "b");
    await sleep(20);
    await writeFile(join(dir, "images.ts"), "y");
    await writeFile(join(dir, "src", "skip.log"), "b");
    await sleep(400);
    await w.close();
    assert.equal(batches.length, 1, JSON.stringify(batches));
    assert.deepEqual(batches[0].paths.sort(), [join(dir, "images.ts"), join(dir, "src", "a.go")].sort());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("update() stops reporting removed targets and starts reporting new ones", async () => {
  const dir = await mkdtemp(join(tmpdir(), "mstage-watch-"));
  try {
    await writeFile(join(dir, "a"), "1");
    await writeFile(join(dir, "b"), "1");
    const batches: ChangeBatch[] = [];
    const w = watchTargets([{ path: join(dir, "a") }], (b) => batches.push(b), { debounceMs: 50 });
    await sleep(300);
    w.update([{ path: join(dir, "b") }]);
    await sleep(300);
    await writeFile(join(dir, "a"), "2");
    await writeFile(join(dir, "b"), "2");
    await sleep(300);
    await w.close();
    assert.deepEqual(batches.flatMap((b) => b.paths), [join(dir, "b")]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
