import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { syncFilesystem } from "./atomic-files.ts";

test("callers of syncFilesystem while a sync runs share the next one, which starts after it", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-sync-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const order: string[] = [];
  const first = syncFilesystem(dir);
  // Asked while `first` runs: it may have started before these callers' writes, so they wait for one more.
  const second = syncFilesystem(dir);
  const third = syncFilesystem(join(dir, "."));
  assert.notEqual(first, second);
  assert.equal(second, third, "one sync serves everyone who asked while the first ran");
  first.then(() => order.push("first"));
  second.then(() => order.push("second"));
  await Promise.all([first, second]);
  assert.deepEqual(order, ["first", "second"]);
  // Nothing runs now: the next caller starts a sync of its own at once.
  const later = syncFilesystem(dir);
  assert.notEqual(later, second);
  await later;
});

test("a sync that fails rejects the caller and those who waited for the next one with a user error naming the store", async () => {
  const missing = join(tmpdir(), `mstage-sync-missing-${process.pid}`);
  const bad = syncFilesystem(missing);
  const next = syncFilesystem(missing);
  await assert.rejects(bad, /cannot make the store at .* durable/);
  await assert.rejects(next, /cannot make the store at .* durable/);
});
