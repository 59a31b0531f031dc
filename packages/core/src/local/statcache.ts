// Remembers each hashed file's digest under its stat fingerprint (size, mtime, ctime, inode), so a
// no-op plan reads no file contents. Kept as one JSON file per project in the store.
import { closeSync, mkdirSync, openSync, readFileSync, readSync, renameSync, writeFileSync, type Stats } from "node:fs";
import { createHash } from "node:crypto";
import { dirname } from "node:path";

interface CacheFile {
  v: 1;
  /** abs path → "fingerprint digest-hex" */
  files: Record<string, string>;
}

export class StatCache {
  private readonly old: Map<string, string>;
  private readonly now = new Map<string, string>();
  private dirty = false;
  /** Files whose contents were read this run (for tests and the bench). */
  reads = 0;

  private constructor(readonly path: string | undefined, entries: Record<string, string>) {
    this.old = new Map(Object.entries(entries));
  }

  static load(path: string | undefined): StatCache {
    if (!path) return new StatCache(undefined, {});
    try {
      const data = JSON.parse(readFileSync(path, "utf8")) as CacheFile;
      if (data.v === 1 && typeof data.files === "object") return new StatCache(path, data.files);
    } catch {
      // Missing or unreadable: start empty; it is only a cache.
    }
    return new StatCache(path, {});
  }

  /** The sha256 hex of a regular file's contents, read only when its stat changed. */
  fileDigest(abs: string, st: Stats): string {
    const fp = `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`;
    const known = this.now.get(abs) ?? this.old.get(abs);
    if (known !== undefined) {
      const space = known.indexOf(" ");
      if (known.slice(0, space) === fp) {
        if (!this.now.has(abs)) this.now.set(abs, known);
        return known.slice(space + 1);
      }
    }
    const hex = hashFile(abs);
    this.reads++;
    this.now.set(abs, `${fp} ${hex}`);
    this.dirty = true;
    return hex;
  }

  /** Writes the cache (atomically) if a file was hashed this run. */
  save(): void {
    if (!this.path || !this.dirty) return;
    const data: CacheFile = { v: 1, files: Object.fromEntries([...this.old, ...this.now]) };
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(data));
    renameSync(tmp, this.path);
  }
}

const CHUNK = 1 << 20;

export function hashFile(abs: string): string {
  const h = createHash("sha256");
  const fd = openSync(abs, "r");
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
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
