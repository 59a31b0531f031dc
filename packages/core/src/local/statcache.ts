// Remembers each hashed file's digest under its stat fingerprint (size, mtime, ctime, inode), so a
// no-op plan reads no file contents. One compact file per local() source (or bind) in the store's
// per-project directory, its records in walk order: a warm plan matches each walked file against
// the next record, so it neither parses the whole file into objects nor builds a map.
//
// File: MAGIC, then per file [u32 LE byte length of the path][path, UTF-8: from the project
// directory, or absolute outside it][f64 LE size, mtimeMs, ctimeMs, ino]
// [32 bytes sha256], then the trailer [u32 0xffffffff][u32 record count]. Walked files are matched
// in place, without a string or an object per record. A
// file without the magic and a whole trailer (an older format, a torn copy) is ignored, as is the
// rest of one whose records stop making sense: it is only a cache, rewritten by the next plan.
import { closeSync, fstatSync, openSync, readSync, rmSync } from "node:fs";
import { endianness } from "node:os";
import { join } from "node:path";
import { writeFileAtomicSync } from "../atomic-file.ts";
import { sha256Hex } from "../canonical.ts";
import type { StatFingerprint } from "./walk.ts";

/** What SourceStatCache.match returns for a file whose stat it knows. */
export const KNOWN = -1;

const MAGIC = Buffer.from("mstage stat-cache 4\n");
const END = 0xffffffff;
const TRAILER = 8;
/** Size, mtimeMs, ctimeMs, ino. */
const NUMBERS = 32;
const DIGEST = 32;

/** The stat caches of one project: a directory holding one file per source. */
export class StatCache {
  private readonly sources: SourceStatCache[] = [];

  private constructor(readonly dir: string | undefined) {}

  /** `dir` undefined: nothing is remembered, every plan reads every file. */
  static open(dir: string | undefined): StatCache {
    // The one JSON file of the format before (stat-cache/<hex>.json) is never read again.
    if (dir !== undefined) rmSync(`${dir}.json`, { force: true });
    return new StatCache(dir);
  }

  /** The cache of one source, named by what selects its files (path, patterns, ignore use). */
  source(id: string): SourceStatCache {
    const s = new SourceStatCache(this.dir === undefined ? undefined : join(this.dir, sha256Hex(id).slice(0, 32)));
    this.sources.push(s);
    return s;
  }

  /** Files whose contents were read this run (for tests and the bench). */
  get reads(): number {
    return this.sources.reduce((n, s) => n + s.reads, 0);
  }
}

/**
 * One source's records. Call `match` for every regular file in walk order, `fill` for the ones it
 * did not know once they are hashed, then `save`.
 */
export class SourceStatCache {
  /** The old file, open while the walk reads it; undefined when there is none (or it is not valid). */
  private fd: number | undefined;
  /**
   * The part of the old file read so far: its bytes from offset `base`. It moves WINDOW bytes at a
   * time as the walk goes through the records in order, so the file is never in memory whole (17 MB
   * for 200 000 files), unless the walk leaves the old order.
   */
  private old = Buffer.alloc(0);
  private base = 0;
  /** Start and end of the old file's records (file offsets, as every offset here). */
  private readonly start: number;
  private readonly end: number;
  /** How many files the last walk had (0 without a cache). */
  readonly files: number;
  /** Next old record a walk in the same order as last time reaches. */
  private cursor: number;
  /** Built once the walk leaves the old order: path → offset of its old record. */
  private index: Map<string, number> | undefined;
  /** The new file's records, once they differ from the old ones (undefined: same as the old file so far). */
  private out: Buffer | undefined;
  private outLength = 0;
  /** The UTF-8 of the path being matched. */
  private scratch = Buffer.allocUnsafe(4096);
  /** Whether the path `key` saw last is ASCII alone (else its UTF-8 is in `scratch`). */
  private ascii = true;
  reads = 0;
  /** A fingerprint's numbers as a record holds them (sameStatAt). */
  private readonly numbers = new Float64Array(4);
  private readonly numberBytes = new Uint8Array(this.numbers.buffer);

  constructor(readonly path: string | undefined) {
    const valid = path === undefined ? undefined : openValid(path);
    this.fd = valid?.fd;
    this.start = valid ? MAGIC.length : 0;
    this.end = valid ? valid.size - TRAILER : 0;
    this.files = valid?.files ?? 0;
    this.cursor = this.start;
  }

  /**
   * KNOWN when a regular file (named by its cache path) has the stat recorded, its sha256 then the
   * 32 bytes of `known` at `knownAt` (until the next call); else a slot number for `fill` once the
   * file is hashed.
   */
  match(dir: string, name: string, st: StatFingerprint): number {
    const n = this.key(dir, name);
    // The record at the cursor, or (a file added or removed before this one) the one found by path
    // further on; the records passed over belong to files that are gone.
    let at: number | undefined = this.cursor;
    if (!this.isKeyAt(at, dir, name, n)) {
      at = this.indexed().get(dir === "" ? name : dir + "/" + name);
      if (at !== undefined && at < this.cursor) at = undefined;
      if (at !== this.cursor) this.leaveOrder();
    }
    if (at !== undefined) {
      const after = this.recordEnd(at)!;
      const same = this.sameStatAt(at + 4 + n, st);
      // Changed: the records before it are kept as they are, this one is written anew.
      if (!same) this.leaveOrder();
      this.cursor = after;
      if (same) {
        if (this.out !== undefined) this.append(at, after);
        this.knownAt = this.view(after - DIGEST, DIGEST);
        return KNOWN;
      }
    }
    this.reserve(4 + n + NUMBERS + DIGEST);
    const out = this.out!;
    let p = out.writeUInt32LE(n, this.outLength);
    if (this.ascii) {
      if (dir !== "") (p += out.write(dir, p, "latin1")), (out[p++] = SLASH);
      p += out.write(name, p, "latin1");
    } else p += this.scratch.copy(out, p, 0, n);
    for (const x of [st.size, st.mtimeMs, st.ctimeMs, st.ino]) p = out.writeDoubleLE(x, p);
    this.outLength = p + DIGEST;
    return p;
  }

  /** The buffer holding the digest of the file `match` last found KNOWN (at `knownAt`). */
  get known(): Buffer {
    return this.old;
  }
  knownAt = 0;

  /** That digest in hex. */
  knownHex(): string {
    return this.old.toString("hex", this.knownAt, this.knownAt + DIGEST);
  }

  /** Records the digest of a file `match` did not know. */
  fill(slot: number, hex: string): void {
    this.reads++;
    this.out!.write(hex, slot, DIGEST, "hex");
  }

  /** Writes the file (atomically) when any record changed or a file it knew has gone. */
  save(): void {
    if (!this.path) return;
    if (this.out === undefined && this.cursor === this.end && this.fd !== undefined) return this.close();
    if (this.out === undefined) this.leaveOrder();
    this.close();
    let count = 0;
    for (let p = 0; p < this.outLength; p = 4 + this.out!.readUInt32LE(p) + p + NUMBERS + DIGEST) count++;
    const trailer = Buffer.alloc(TRAILER);
    trailer.writeUInt32LE(END, 0);
    trailer.writeUInt32LE(count, 4);
    writeFileAtomicSync(this.path, Buffer.concat([MAGIC, this.out!.subarray(0, this.outLength), trailer]));
  }

  /** Lets go of the old file (save does; call it when a walk fails). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.old = Buffer.alloc(0);
  }

  /** Makes the old file's bytes [p, p + n) readable in `old`: their index there. */
  private view(p: number, n: number): number {
    if (p >= this.base && p + n <= this.base + this.old.length) return p - this.base;
    // The first window is small, so that the walk moves it (a rare path) before V8 optimizes match.
    const length = Math.min(Math.max(this.old.length === 0 ? FIRST_WINDOW : WINDOW, n), this.end + TRAILER - p);
    // Both tests every time (a test first met in optimized code deoptimizes it too).
    if (this.old.length > WINDOW || this.old.length < length) this.old = Buffer.allocUnsafe(length);
    this.readOld(this.old, 0, p, length);
    this.old = this.old.subarray(0, length);
    this.base = p;
    return 0;
  }

  private readOld(into: Buffer, at: number, from: number, length: number): void {
    for (let done = 0; done < length; ) {
      const n = readSync(this.fd!, into, at + done, length - done, from + done);
      if (n === 0) throw new Error(`internal error (a bug in mstage): the stat cache ${this.path} ended early`);
      done += n;
    }
  }

  /**
   * The byte length of the UTF-8 of the path `dir/name` (`name` when dir is ""). A path of ASCII
   * alone (nearly all) is compared with the records character by character, in place; any other
   * is encoded into `scratch` first.
   */
  private key(dir: string, name: string): number {
    this.ascii = isAscii(dir) && isAscii(name);
    if (this.ascii) return dir === "" ? name.length : dir.length + 1 + name.length;
    const path = dir === "" ? name : dir + "/" + name;
    if (path.length * 3 > this.scratch.length) this.scratch = Buffer.allocUnsafe(path.length * 3);
    return this.scratch.write(path);
  }

  /** Whether the old record at `p` is the file `dir/name`, whose UTF-8 is `n` bytes long. */
  private isKeyAt(p: number, dir: string, name: string, n: number): boolean {
    if (this.recordEnd(p) !== p + 4 + n + NUMBERS + DIGEST) return false;
    const at = this.view(p + 4, n);
    const o = this.old;
    if (!this.ascii) return o.compare(this.scratch, 0, n, at, at + n) === 0;
    let q = at;
    if (dir !== "") {
      for (let i = 0; i < dir.length; i++, q++) if (o[q] !== dir.charCodeAt(i)) return false;
      if (o[q++] !== SLASH) return false;
    }
    for (let i = 0; i < name.length; i++, q++) if (o[q] !== name.charCodeAt(i)) return false;
    return true;
  }

  /** Whether the record's numbers at `n` are this stat. */
  private sameStatAt(p: number, st: StatFingerprint): boolean {
    const n = this.view(p, NUMBERS);
    const o = this.old;
    if (!LITTLE_ENDIAN) return o.readDoubleLE(n) === st.size && o.readDoubleLE(n + 8) === st.mtimeMs && o.readDoubleLE(n + 16) === st.ctimeMs && o.readDoubleLE(n + 24) === st.ino;
    // The same bytes as the record's (stricter than ===, which also calls 0 and -0 equal: at worst
    // a file read again): no call per number.
    const numbers = this.numbers;
    numbers[0] = st.size;
    numbers[1] = st.mtimeMs;
    numbers[2] = st.ctimeMs;
    numbers[3] = st.ino;
    const bytes = this.numberBytes;
    for (let i = 0; i < NUMBERS; i++) if (o[n + i] !== bytes[i]) return false;
    return true;
  }

  /** The walk no longer follows the old records one by one: new records are written from here on. */
  private leaveOrder(): void {
    if (this.out !== undefined) return;
    this.out = Buffer.allocUnsafe(Math.max(1 << 16, this.cursor - this.start));
    this.outLength = this.cursor - this.start;
    this.readOld(this.out, 0, this.start, this.outLength);
  }

  private reserve(n: number): void {
    if (this.outLength + n <= this.out!.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.out!.length * 2, this.outLength + n));
    this.out!.copy(bigger, 0, 0, this.outLength);
    this.out = bigger;
  }

  /** Copies the old records [start, end) to the new file. */
  private append(start: number, end: number): void {
    this.reserve(end - start);
    const i = this.view(start, end - start);
    this.outLength += this.old.copy(this.out!, this.outLength, i, i + end - start);
  }

  /** The old records not reached in order, by path (the ones before the cursor were all matched). */
  private indexed(): Map<string, number> {
    if (this.index) return this.index;
    this.index = new Map();
    if (this.fd === undefined || this.cursor >= this.end) return this.index;
    // Every record from here on, read once: the lookups that follow jump about in it.
    this.view(this.cursor, this.end - this.cursor);
    for (let p = this.cursor, after = this.recordEnd(p); after !== undefined; p = after, after = this.recordEnd(p)) {
      const i = p - this.base;
      this.index.set(this.old.toString("utf8", i + 4, i + 4 + this.old.readUInt32LE(i)), p);
    }
    return this.index;
  }

  /** The end of the record at `p`, or undefined at the end (or where the records stop making sense). */
  private recordEnd(p: number): number | undefined {
    if (p + 4 > this.end) return undefined;
    // view() first: it may replace `old`.
    const i = this.view(p, 4);
    const after = p + 4 + this.old.readUInt32LE(i) + NUMBERS + DIGEST;
    return after > this.end ? undefined : after;
  }
}

/** Whether a Float64Array's bytes are a record's (little-endian) doubles. */
const LITTLE_ENDIAN = endianness() === "LE";

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

const SLASH = 0x2f;

/** Bytes of the old file read at a time. */
const WINDOW = 1 << 20;
/** Bytes of the first window: a few dozen records. */
const FIRST_WINDOW = 4096;

/** The file, open, when it has this format's magic and a whole trailer; else undefined. */
function openValid(path: string): { fd: number; size: number; files: number } | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(MAGIC.length);
    const trailer = Buffer.alloc(TRAILER);
    if (size >= MAGIC.length + TRAILER && readSync(fd, head, 0, head.length, 0) === head.length && head.equals(MAGIC)) {
      if (readSync(fd, trailer, 0, TRAILER, size - TRAILER) === TRAILER && trailer.readUInt32LE(0) === END) return { fd, size, files: trailer.readUInt32LE(4) };
    }
  } catch {
    // Unreadable: as if there were none.
  }
  closeSync(fd);
  return undefined;
}
