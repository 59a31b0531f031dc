import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { watchTargets, type ChangeBatch } from "./watcher.ts";

/** Collects batches; next() resolves with the next one to arrive. */
function collector() {
  const batches: ChangeBatch[] = [];
  let wake: (() => void) | undefined;
  return {
    batches,
    onChange(b: ChangeBatch) {
      batches.push(b);
      wake?.();
    },
    async next(): Promise<ChangeBatch> {
      const n = batches.length;
      while (batches.length === n) await new Promise<void>((r) => (wake = r));
      return batches[n]!;
    },
  };
}

test("a burst of saves within the debounce window is reported as one change", async () => {
  const dir = await mkdtemp(join(tmpdir(), "mstage-watch-"));
  try {
    await mkdir(join(dir, "src"));
    await writeFile(join(dir, "images.ts"), "x");
    await writeFile(join(dir, "src", "a.go"), "a");
    await writeFile(join(dir, "src", "skip.log"), "a");
    const c = collector();
    const w = watchTargets([{ path: join(dir, "images.ts") }, { path: join(dir, "src"), ignored: (p) => p.endsWith(".log") }], (b) => c.onChange(b));
    await w.ready;
    const burst = c.next();
    await writeFile(join(dir, "src", "a.go"), "b");
    await writeFile(join(dir, "images.ts"), "y");
    await writeFile(join(dir, "src", "skip.log"), "b");
    assert.deepEqual((await burst).paths.sort(), [join(dir, "images.ts"), join(dir, "src", "a.go")].sort());
    // Nothing of the burst (the ignored .log least of all) trails behind it: the next batch is
    // only the next save.
    const after = c.next();
    await writeFile(join(dir, "src", "a.go"), "c");
    assert.deepEqual((await after).paths, [join(dir, "src", "a.go")]);
    await w.close();
    assert.equal(c.batches.length, 2, JSON.stringify(c.batches));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("update() stops reporting removed targets and starts reporting new ones", async () => {
  const dir = await mkdtemp(join(tmpdir(), "mstage-watch-"));
  try {
    await writeFile(join(dir, "a"), "1");
    await writeFile(join(dir, "b"), "1");
    const c = collector();
    const w = watchTargets([{ path: join(dir, "a") }], (b) => c.onChange(b), { debounceMs: 50 });
    await w.ready;
    const first = c.next();
    await writeFile(join(dir, "a"), "2");
    assert.deepEqual((await first).paths, [join(dir, "a")]);
    await w.update([{ path: join(dir, "b") }]);
    const second = c.next();
    await writeFile(join(dir, "a"), "3");
    await writeFile(join(dir, "b"), "2");
    assert.deepEqual((await second).paths, [join(dir, "b")]);
    await w.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
