import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { openBlobPipe, openDigestPipe, type Ring } from "./blob-pipe.ts";
import { withStore } from "./testing.ts";
import type { Digest } from "../oci/digest.ts";

const SLOT = 4 << 20;

/** Gives `bytes` to the ring the way a layer commit does: a buffer is taken only when the last is full. */
function fill(ring: Ring, bytes: Buffer): void {
  let buf = ring.take();
  let pos = 0;
  for (let off = 0; off < bytes.length; ) {
    const n = Math.min(bytes.length - off, buf.length - pos);
    bytes.copy(buf, pos, off, off + n);
    pos += n;
    off += n;
    if (pos === buf.length) {
      ring.give(pos);
      buf = ring.take();
      pos = 0;
    }
  }
  if (pos) ring.give(pos);
}

const sha256 = (b: Buffer) => "sha256:" + createHash("sha256").update(b).digest("hex");
// Sizes around one slot: those that fit are hashed on this thread, the others on the worker.
const SIZES = [0, 1, 1000, SLOT - 1, SLOT, SLOT + 1, 3 * SLOT + 17];

test("a digest pipe gives the sha256 and size of what it was given, in one slot or many", async () => {
  for (const size of SIZES) {
    const bytes = randomBytes(size);
    const pipe = openDigestPipe();
    fill(pipe.ring, bytes);
    assert.deepEqual(await pipe.finish(), { digest: sha256(bytes), size }, `${size} bytes`);
  }
});

test("a blob pipe stores exactly the bytes it was given, in one slot or many", async () => {
  await withStore(async (store) => {
    for (const size of SIZES) {
      const bytes = randomBytes(size);
      const pipe = await openBlobPipe(store.layout);
      fill(pipe.ring, bytes);
      const r = await pipe.finish();
      assert.deepEqual(r, { digest: sha256(bytes), size }, `${size} bytes`);
      assert.ok(readFileSync(store.layout.blob(r.digest)).equals(bytes), `${size} bytes stored`);
    }
  });
});

test("a blob pipe told the digest to expect stores nothing else, in one slot or many", async () => {
  await withStore(async (store) => {
    for (const size of [10, 2 * SLOT]) {
      const pipe = await openBlobPipe(store.layout);
      fill(pipe.ring, randomBytes(size));
      await assert.rejects(pipe.finish(sha256(Buffer.from("other")) as Digest), /DigestMismatch|does not match|digest/i);
    }
  });
});

test("thousands of small commits reuse their rings: the address space does not grow by 32 MiB each", async () => {
  const vmSize = () => Number(/VmSize:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))![1]) * 1024;
  const before = vmSize();
  for (let i = 0; i < 300; i++) {
    const pipe = openDigestPipe();
    fill(pipe.ring, Buffer.from(`layer ${i}`));
    await pipe.finish();
  }
  // A fresh ring each time, freed only when collected, grew it by ~9 GiB here.
  assert.ok(vmSize() - before < 1 << 30, `the address space grew by ${((vmSize() - before) / 2 ** 20).toFixed(0)} MiB`);
});
