import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeHeader, writeSimpleHeader, type TarHeader } from "./tar-header.ts";
import { parsePaxRecords } from "./pax-tap.ts";

function paxOf(block: Buffer): { records: Map<string, Buffer>; lengths: number[] } {
  assert.equal(String.fromCharCode(block[156]), "x", "a pax header comes first");
  const size = parseInt(block.toString("latin1", 124, 135), 8);
  const body = block.subarray(512, 512 + size);
  const lengths: number[] = [];
  for (let off = 0; off < body.length; ) {
    const sp = body.indexOf(0x20, off);
    const len = parseInt(body.toString("latin1", off, sp), 10);
    assert.equal(body[off + len - 1], 0x0a, `record at ${off} ends where its length says (${len})`);
    lengths.push(len);
    off += len;
  }
  return { records: parsePaxRecords(body), lengths };
}

test("pax records carry their exact length, also where the length gains a digit", () => {
  // Record lengths across 100 and 1000 bytes exercise the self-referential length prefix.
  for (let n = 101; n <= 1010; n++) {
    const name = "d/".repeat(60).slice(0, 120) + "x".repeat(n);
    const block = encodeHeader({ name, type: "file", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 });
    const { records } = paxOf(block);
    assert.equal(records.get("path")?.toString("utf8"), name);
  }
  for (let n = 1; n <= 120; n++) {
    const value = Buffer.alloc(n, 0xff);
    const block = encodeHeader({ name: "f", type: "file", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0, pax: [["SCHILY.xattr.user.x", value]] });
    assert.deepEqual(paxOf(block).records.get("SCHILY.xattr.user.x"), value);
  }
});

test("a name that fits ustar's prefix and name fields needs no pax header", () => {
  const name = "a".repeat(150) + "/" + "b".repeat(99);
  const block = encodeHeader({ name, type: "file", mode: 0o644, uid: 1000, gid: 1000, size: 5, mtime: 0 });
  assert.equal(block.length, 512);
  assert.equal(block.toString("latin1", 345, 495), "a".repeat(150));
  assert.equal(block.toString("latin1", 0, 99), "b".repeat(99));
});

test("ids and sizes too big for ustar's octal fields go to pax", () => {
  const block = encodeHeader({ name: "big", type: "file", mode: 0o644, uid: 3_000_000, gid: 5, size: 10 * 1024 ** 3, mtime: 0 });
  const { records } = paxOf(block);
  assert.equal(records.get("uid")?.toString(), "3000000");
  assert.equal(records.get("size")?.toString(), String(10 * 1024 ** 3));
});

test("a header written in place has encodeHeader's bytes, and one that needs more is left to it", () => {
  const plain: TarHeader[] = [
    { name: "etc/", type: "directory", mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 },
    { name: "usr/bin/go", type: "file", mode: 0o4755, uid: 1000, gid: 65534, size: 123_456_789, mtime: 1_700_000_000 },
    { name: "x".repeat(100), type: "file", mode: 0o644, uid: 0o7777777, gid: 1, size: 0o77777777777, mtime: 0o77777777777 },
    { name: "lib/libc.so", type: "symlink", mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 5, linkname: "é".repeat(50) },
    { name: "bin/sh", type: "link", mode: 0o755, uid: 2, gid: 3, size: 0, mtime: 7, linkname: "bin/dash" },
    { name: "ünïcode/fïfo", type: "fifo", mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 1 },
  ];
  // Written over leftovers at an offset, as into a ring buffer that held other bytes.
  const buf = Buffer.alloc(2048, 0xaa);
  for (const h of plain) {
    assert.equal(writeSimpleHeader(buf, 700, h.name, h.type, h.mode, h.uid, h.gid, h.size, h.mtime, h.linkname), true, h.name);
    assert.deepEqual(buf.subarray(700, 1212), encodeHeader(h), h.name);
  }
  const more: TarHeader[] = [
    { name: "x".repeat(101), type: "file", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 },
    { name: "é".repeat(51), type: "file", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 },
    { name: "l", type: "symlink", mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 0, linkname: "y".repeat(101) },
    { name: "big", type: "file", mode: 0o644, uid: 3_000_000, gid: 0, size: 0, mtime: 0 },
    { name: "huge", type: "file", mode: 0o644, uid: 0, gid: 0, size: 10 * 1024 ** 3, mtime: 0 },
    { name: "old", type: "file", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: -1 },
  ];
  for (const h of more) assert.equal(writeSimpleHeader(buf, 0, h.name, h.type, h.mode, h.uid, h.gid, h.size, h.mtime, h.linkname), false, h.name);
});
