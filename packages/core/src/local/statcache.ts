// Remembers each hashed file's digest under its stat fingerprint (size, mtime, ctime, inode), so a
// no-op plan reads no file contents. Kept as one JSON file per project in the store.
import { closeSync, openSync, readFileSync, readSync, type Stats } from "node:fs";
import { createHash } from "node:crypto";
import { writeFileAtomicSync } from "../atomic-file.ts";

/** [size, mtimeMs, ctimeMs, ino, sha256 hex]: numbers compared as they are, no formatting. */
type Entry = [number, number, number, number, string];

interface CacheFile {
  v: 2;
  /** abs path → entry */
  files: Record<string, Entry>;
}

export class StatCache {
  private readonly old: Record<string, Entry>;
  private readonly now: Record<string, Entry> = Object.create(null);
  private dirty = false;
  /** Old entries confirmed this run: when that is all of them and nothing was hashed, no write. */
  private kept = 0;
  /** Directories walked in full this run: old entries below them that were not seen are gone. */
  private readonly walked: string[] = [];
  /** Files whose contents were read this run (for tests and the bench). */
  reads = 0;

  private constructor(readonly path: string | undefined, entries: Record<string, Entry>) {
    this.old = entries;
  }

  static load(path: string | undefined): StatCache {
    if (!path) return new StatCache(undefined, Object.create(null));
    try {
      const data = JSON.parse(readFileSync(path, "utf8")) as CacheFile;
      if (data.v === 2 && typeof data.files === "object") return new StatCache(path, data.files);
    } catch {
      // Missing or unreadable: start empty; it is only a cache.
    }
    return new StatCache(path, Object.create(null));
  }

  /** The sha256 hex of a regular file's contents, read only when its stat changed. */
  fileDigest(abs: string, st: Stats): string {
    const known = this.now[abs] ?? this.old[abs];
    if (known !== undefined && known[0] === st.size && known[1] === st.mtimeMs && known[2] === st.ctimeMs && known[3] === st.ino) {
      if (!(abs in this.now)) this.kept++;
      this.now[abs] = known;
      return known[4];
    }
    const hex = hashFile(abs);
    this.reads++;
    this.now[abs] = [st.size, st.mtimeMs, st.ctimeMs, st.ino, hex];
    this.dirty = true;
    return hex;
  }

  /** Notes that every file below `dir` was looked up this run (see save). */
  walkedDir(dir: string): void {
    this.walked.push(dir.endsWith("/") ? dir : dir + "/");
  }

  /**
   * Writes the cache (atomically) if a file was hashed this run or a file it knew has gone.
   * Entries of sources not planned this run (other targets) are kept.
   */
  save(): void {
    if (!this.path) return;
    if (!this.dirty && this.kept === Object.keys(this.old).length) return;
    const files: Record<string, Entry> = Object.create(null);
    let dropped = 0;
    for (const abs in this.old) {
      if (abs in this.now) continue;
      if (this.walked.some((d) => abs.startsWith(d))) dropped++;
      else files[abs] = this.old[abs];
    }
    if (!this.dirty && dropped === 0) return;
    Object.assign(files, this.now);
    const data: CacheFile = { v: 2, files };
    writeFileAtomicSync(this.path, JSON.stringify(data));
  }
}

const CHUNK = 1 << 20;
/** One read buffer for all files: allocating one per file made hashing 20 000 files GC-bound. */
let buffer: Buffer | undefined;

export function hashFile(abs: string): string {
  const h = createHash("sha256");
  const fd = openSync(abs, "r");
  try {
    const buf = (buffer ??= Buffer.allocUnsafe(CHUNK));
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) break;
      h.update(n === CHUNK ? buf : buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}
