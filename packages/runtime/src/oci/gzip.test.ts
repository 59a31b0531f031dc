import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { crc32, gunzipSync, inflateRawSync } from "node:zlib";
import { GZIP_BLOCK, gzipChunks } from "./gzip.ts";

/** Text-like and random-like stretches, so blocks differ and dictionaries matter. */
function sample(size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 12345;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (i >> 16) % 2 ? x >>> 24 : 97 + ((i * 7 + (x >>> 29)) % 26);
  }
  return out;
}

async function gzip(data: Buffer, workers: number, chunk = 65536, threadPoolBlocks?: number): Promise<Buffer> {
  async function* source() {
    for (let off = 0; off < data.length; off += chunk) yield data.subarray(off, off + chunk);
  }
  const parts: Buffer[] = [];
  for await (const c of gzipChunks(source(), { workers, threadPoolBlocks })) parts.push(c);
  return Buffer.concat(parts);
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

test("parallel gzip gives the same bytes for 1, 2 and 8 workers, any input chunking and repeated runs", async () => {
  for (const size of [0, 1, GZIP_BLOCK, 3 * GZIP_BLOCK + 12345]) {
    const data = sample(size);
    const one = await gzip(data, 1);
    for (const [workers, chunk] of [[2, 65536], [8, 65536], [8, 1 << 20], [1, 7777], [2, 65536]] as const) {
      assert.equal(sha(await gzip(data, workers, chunk)), sha(one), `size ${size}, ${workers} workers, ${chunk}-byte reads`);
    }
    // A block deflated on libuv's thread pool is the same bytes as one deflated by a worker.
    assert.equal(sha(await gzip(data, 2, 65536, 0)), sha(one), `size ${size}, every block on a worker`);
    assert.equal(sha(await gzip(data, 2, 65536, Infinity)), sha(one), `size ${size}, every block on the thread pool`);
    assert.deepEqual(gunzipSync(one), data, `size ${size} round-trips`);
  }
});

test("parallel gzip is one gzip member: fixed header, one deflate stream, the input's CRC32 and ISIZE; gzip -t accepts it", async () => {
  const data = sample(2 * GZIP_BLOCK + 999);
  const gz = await gzip(data, 2);
  assert.deepEqual([...gz.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  // inflateRaw stops at the first final block: all of the input inside means no second member.
  assert.deepEqual(inflateRawSync(gz.subarray(10, gz.length - 8)), data);
  assert.equal(gz.readUInt32LE(gz.length - 8), crc32(data) >>> 0);
  assert.equal(gz.readUInt32LE(gz.length - 4), data.length);
  const check = spawnSync("gzip", ["-t"], { input: gz });
  assert.equal(check.status, 0, check.stderr.toString());
  const back = spawnSync("gzip", ["-dc"], { input: gz, maxBuffer: 1 << 26 });
  assert.equal(sha(back.stdout), sha(data));
});

test("parallel gzip compresses about as well as one zlib stream at level 6", async () => {
  const data = sample(4 * GZIP_BLOCK);
  const gz = await gzip(data, 2);
  const single = spawnSync("gzip", ["-6", "-c"], { input: data, maxBuffer: 1 << 26 }).stdout;
  assert.ok(gz.length < single.length * 1.01, `${gz.length} vs ${single.length}`);
});
