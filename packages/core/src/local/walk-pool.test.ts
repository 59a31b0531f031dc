import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WalkPool } from "./walk-pool.ts";

test("a listing its thread has not started on is taken back: it never settles, and the thread goes on with the next", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-walk-pool-"));
  writeFileSync(join(dir, "b"), "");
  writeFileSync(join(dir, "a"), "");
  const pool = new WalkPool(1);
  // Asked of a thread that is only starting (tens of ms before it runs a line): nothing is claimed yet.
  const first = pool.list(dir);
  assert.equal(pool.take(first.id), true);
  assert.equal(pool.take(first.id), false, "taken once");
  let settled = false;
  first.listing.then(
    () => (settled = true),
    () => (settled = true),
  );
  const second = pool.list(dir);
  assert.deepEqual((await second.listing).names, ["a", "b"]);
  // The thread answered the first (skipped) before the second: a settled first would show by now.
  assert.equal(settled, false, "a taken request never settles");
  assert.equal(pool.take(second.id), false, "an answered request cannot be taken");
  // The idle thread is unref'd again (the skipped request counted as answered): the test run exits.
});

test("requests taken back hold their claim until their thread has skipped them: a pool full of them asks for nothing more, then serves again", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-walk-pool-"));
  writeFileSync(join(dir, "only"), "");
  const pool = new WalkPool(1);
  // All taken back while the thread is starting, but for the last: still in its queue, every one.
  const taken: number[] = [];
  let last: ReturnType<WalkPool["list"]> | undefined;
  while (!pool.full) {
    last = pool.list(dir);
    if (!pool.full) assert.equal(pool.take(last.id), true), taken.push(last.id);
  }
  assert.ok(taken.length >= 8, `${taken.length} requests out at once`);
  assert.throws(() => pool.list(dir), /full walk pool/);
  // The thread answers in order: once the last is answered, it has skipped the others.
  assert.deepEqual((await last!.listing).names, ["only"]);
  assert.equal(pool.full, false);
  const again = Array.from({ length: taken.length + 1 }, () => pool.list(dir));
  for (const r of again) assert.deepEqual((await r.listing).names, ["only"]);
});
