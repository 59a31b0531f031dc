import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoreLayout, formatGzipRecord, layerInStore, parseGzipRecord, readStoredResult } from "./store-layout.ts";

const hex = (c: string) => c.repeat(64);

test("store paths come from one layout, and a digest that is not sha256:<64 hex> names no path", () => {
  const l = new StoreLayout("/s");
  assert.equal(l.blob(`sha256:${hex("a")}`), `/s/blobs/sha256/${hex("a")}`);
  assert.equal(l.layer(`sha256:${hex("b")}`), `/s/layers/${hex("b")}`);
  assert.equal(l.result(`sha256:${hex("c")}`), `/s/results/${hex("c")}.json`);
  assert.equal(l.gzip(`sha256:${hex("d")}`), `/s/gzip/${hex("d")}`);
  assert.equal(l.cache("go-mod"), "/s/caches/go-mod");
  assert.match(l.cache("../x"), /^\/s\/caches\/h-[0-9a-f]{32}$/);
  assert.match(l.statCache("/src/p"), /^\/s\/stat-cache\/[0-9a-f]{32}$/);
  for (const bad of ["sha256:../../etc/passwd", `sha512:${hex("a")}`, `sha256:${hex("A")}`]) assert.throws(() => l.blob(bad), /invalid blob digest/);
  assert.deepEqual(parseGzipRecord(formatGzipRecord({ digest: `sha256:${hex("e")}`, size: 12 })), { digest: `sha256:${hex("e")}`, size: 12 });
  assert.equal(parseGzipRecord("../x 12"), null);
});

test("a stored result is usable only for its own key and while every layer is there (extracted, tar or gzip blob)", () => {
  const root = mkdtempSync(join(tmpdir(), "mstage-layout-"));
  try {
    const l = new StoreLayout(root);
    for (const d of ["blobs/sha256", "layers", "results", "gzip"]) mkdirSync(join(root, d), { recursive: true });
    const key = `sha256:${hex("1")}`;
    const [a, b, c] = [`sha256:${hex("a")}`, `sha256:${hex("b")}`, `sha256:${hex("c")}`];
    writeFileSync(l.result(key), JSON.stringify({ key, layers: [{ diffId: a }, { diffId: b }] }));
    assert.equal(readStoredResult(l, key), null, "no layer is there");
    mkdirSync(l.layer(a));
    writeFileSync(l.gzip(b), formatGzipRecord({ digest: c, size: 1 }));
    assert.equal(layerInStore(l, b), false, "a gzip record without its blob is not the layer");
    writeFileSync(l.blob(c), "gz");
    assert.equal(readStoredResult(l, key)?.key, key);
    writeFileSync(l.result(key), JSON.stringify({ key: `sha256:${hex("2")}`, layers: [] }));
    assert.equal(readStoredResult(l, key), null, "a record for another key");
    writeFileSync(l.result(key), "{");
    assert.equal(readStoredResult(l, key), null, "a torn record");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
