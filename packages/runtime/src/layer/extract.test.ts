import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { HostileLayerError } from "@mstage/core";
import { Store } from "../store/store.ts";
import { importTarLayer } from "./extract.ts";
import { encodeHeader, END_OF_ARCHIVE, padding } from "./tar-header.ts";

function tarOf(files: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, text] of Object.entries(files)) {
    const body = Buffer.from(text);
    parts.push(encodeHeader({ name, type: "file", mode: 0o644, uid: 0, gid: 0, mtime: 0, size: body.length }), body, Buffer.alloc(padding(body.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer) => "sha256:" + createHash("sha256").update(b).digest("hex");

// workerFrom 0: extracted on a worker thread (as a large tar is); Infinity: on this thread.
for (const [where, workerFrom] of [["on a worker thread", 0], ["on the main thread", Infinity]] as const) {
  test(`importTarLayer ${where}: the tar is the layer's blob and dir; a gzip file is its gzip blob; a hostile tar leaves nothing`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "mstage-import-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const store = await Store.open(join(dir, "store"));
    const tar = tarOf({ "a.txt": "a\n", "c.txt": "c".repeat(100_000) });
    writeFileSync(join(dir, "r.tar"), tar);
    writeFileSync(join(dir, "r.tar.gz"), gzipSync(tar));

    const plain = await importTarLayer(store, join(dir, "r.tar"), { what: "r.tar", workerFrom });
    assert.deepEqual(plain, { diffId: sha256(tar), size: tar.length });
    assert.deepEqual(readFileSync(store.layout.blob(plain.diffId)), tar);
    assert.equal(readFileSync(join(store.layerDir(plain.diffId), "c.txt"), "utf8").length, 100_000);

    const gz = readFileSync(join(dir, "r.tar.gz"));
    const packed = await importTarLayer(store, join(dir, "r.tar.gz"), { what: "r.tar.gz", workerFrom });
    assert.equal(packed.diffId, sha256(tar));
    assert.deepEqual(store.compressedOf(packed.diffId, "gzip"), { digest: sha256(gz), size: gz.length });

    writeFileSync(join(dir, "evil.tar"), tarOf({ "ok.txt": "x", "../evil": "y" }));
    const tmpBefore = readdirSync(store.layout.tmpDir);
    await assert.rejects(importTarLayer(store, join(dir, "evil.tar"), { what: "evil.tar", workerFrom }), HostileLayerError);
    assert.deepEqual(readdirSync(store.layout.tmpDir), tmpBefore, "no temp blob or dir left");
    assert.deepEqual(readdirSync(dir).sort(), ["evil.tar", "r.tar", "r.tar.gz", "store"], "nothing written beside the store");
  });
}
