// Remembers each hashed file's digest under its stat fingerprint (size, mtime, ctime, inode), so a
// no-op plan reads no file contents. One compact file per local() source (or bind) in the store's
// per-project directory, its records in walk order: a warm plan matches each walked file against
// the next record, so it neither parses the whole file into objects nor builds a map.
//
// File: MAGIC, then per file [u32 LE byte length of the absolute path][path, UTF-8][f64 LE size,
// mtimeMs, ctimeMs, ino][32 bytes sha256], then the trailer [u32 0xffffffff][u32 record count]. A
// file without the magic and a whole trailer (an older format, a torn copy) is ignored, as is the
// rest of one whose records stop making sense: it is only a cache, rewritten by the next plan.
import { readFileSync, rmSync, type Stats } from "node:fs";
import { join } from "node:path";
import { writeFileAtomicSync } from "../atomic-file.ts";
import { sha256Hex } from "../canonical.ts";

const MAGIC = Buffer.from("mstage stat-cache 3\n");
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
  private readonly old: Buffer;
  /** Start and end of the old file's records. */
  private readonly start: number;
  private readonly end: number;
  /** Next old record a walk in the same order as last time reaches. */
  private cursor: number;
  /** Built once the walk leaves the old order: path → offset of its old record. */
  private index: Map<string, number> | undefined;
  /** The new file's records, once they differ from the old ones (undefined: same as the old file so far). */
  private out: Buffer | undefined;
  private outLength = 0;
  reads = 0;

  constructor(readonly path: string | undefined) {
    this.old = (path && readValid(path)) || Buffer.alloc(0);
    this.start = this.old.length ? MAGIC.length : 0;
    this.end = this.old.length ? this.old.length - TRAILER : 0;
    this.cursor = this.start;
  }

  /**
   * The sha256 hex of a regular file when its stat is the one recorded, else a slot number for
   * `fill` once the file is hashed.
   */
  match(abs: string, st: Stats): string | number {
    if (this.out === undefined) {
      const r = this.recordAt(this.cursor);
      if (r && r.path === abs && this.same(r, st)) {
        this.cursor = r.after;
        return this.old.toString("hex", r.after - DIGEST, r.after);
      }
      this.leaveOrder();
    }
    const at = this.indexed().get(abs);
    const r = at === undefined ? undefined : this.recordAt(at);
    if (r && this.same(r, st)) {
      this.append(this.old.subarray(at, r.after));
      return this.old.toString("hex", r.after - DIGEST, r.after);
    }
    const path = Buffer.from(abs);
    const rec = Buffer.allocUnsafe(4 + path.length + NUMBERS + DIGEST);
    rec.writeUInt32LE(path.length, 0);
    path.copy(rec, 4);
    let p = 4 + path.length;
    for (const x of [st.size, st.mtimeMs, st.ctimeMs, st.ino]) p = rec.writeDoubleLE(x, p);
    this.append(rec);
    return this.outLength - DIGEST;
  }

  /** Records the digest of a file `match` did not know. */
  fill(slot: number, hex: string): void {
    this.reads++;
    this.out!.write(hex, slot, DIGEST, "hex");
  }

  /** Writes the file (atomically) when any record changed or a file it knew has gone. */
  save(): void {
    if (!this.path) return;
    if (this.out === undefined && this.cursor === this.end && this.old.length) return;
    if (this.out === undefined) this.leaveOrder();
    let count = 0;
    for (let p = 0; p < this.outLength; p = 4 + this.out!.readUInt32LE(p) + p + NUMBERS + DIGEST) count++;
    const trailer = Buffer.alloc(TRAILER);
    trailer.writeUInt32LE(END, 0);
    trailer.writeUInt32LE(count, 4);
    writeFileAtomicSync(this.path, Buffer.concat([MAGIC, this.out!.subarray(0, this.outLength), trailer]));
  }

  private same(r: { numbersAt: number }, st: Stats): boolean {
    const o = this.old;
    const n = r.numbersAt;
    return o.readDoubleLE(n) === st.size && o.readDoubleLE(n + 8) === st.mtimeMs && o.readDoubleLE(n + 16) === st.ctimeMs && o.readDoubleLE(n + 24) === st.ino;
  }

  /** The walk no longer follows the old records one by one: new records are written from here on. */
  private leaveOrder(): void {
    if (this.out !== undefined) return;
    this.out = Buffer.allocUnsafe(Math.max(1 << 16, this.cursor - this.start));
    this.outLength = 0;
    this.append(this.old.subarray(this.start, this.cursor));
  }

  private append(b: Buffer): void {
    if (this.outLength + b.length > this.out!.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.out!.length * 2, this.outLength + b.length));
      this.out!.copy(bigger, 0, 0, this.outLength);
      this.out = bigger;
    }
    b.copy(this.out!, this.outLength);
    this.outLength += b.length;
  }

  /** The old records not reached in order, by path (the ones before the cursor were all matched). */
  private indexed(): Map<string, number> {
    if (this.index) return this.index;
    this.index = new Map();
    for (let p = this.cursor, r = this.recordAt(p); r; p = r.after, r = this.recordAt(p)) this.index.set(r.path, p);
    return this.index;
  }

  /** The record at `p`, or undefined at the end (or where the records stop making sense). */
  private recordAt(p: number): { path: string; numbersAt: number; after: number } | undefined {
    if (p + 4 > this.end) return undefined;
    const len = this.old.readUInt32LE(p);
    const after = p + 4 + len + NUMBERS + DIGEST;
    if (after > this.end) return undefined;
    return { path: this.old.toString("utf8", p + 4, p + 4 + len), numbersAt: p + 4 + len, after };
  }
}

/** The file's bytes when it has this format's magic and a whole trailer, else undefined. */
function readValid(path: string): Buffer | undefined {
  let b: Buffer;
  try {
    b = readFileSync(path);
  } catch {
    return undefined;
  }
  if (b.length < MAGIC.length + TRAILER || !b.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  if (b.readUInt32LE(b.length - TRAILER) !== END) return undefined;
  return b;
}
