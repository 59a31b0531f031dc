// Content digest of a local source (or a read-only bind): relative path, type, mode, symlink target
// and bytes of every entry; never mtime, never the absolute host path.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { resolve } from "node:path";
import { KNOWN, type SourceStatCache } from "./statcache.ts";
import { walkLocalEach, walkLocalParallel, type LocalEntry, type WalkOptions, type WalkedEntry } from "./walk.ts";

export interface LocalDigest {
  /** "sha256:<hex>" over the whole entry list. */
  digest: string;
  /**
   * A short fingerprint of each entry, kept in the state to name the files that changed: a line
   * `"rel","fingerprint"` per entry (StageInputs.files). Made into a string when first read: a no-op
   * plan never reads it, and 200 000 files' lines are 9 MB.
   */
  readonly files: string;
}

/** Files whose contents are read at the same time: enough to keep the disk and the thread pool busy. */
const READERS = 8;
/**
 * Files this size or larger are read asynchronously, READERS at a time. Smaller ones are read in
 * place: reading 20 000 files of 150 bytes through fs/promises took 6× the CPU of readSync.
 */
const LARGE = 1 << 20;
/** Files in a source from which its walk is parallel. */
const PARALLEL_WALK = 5000;

interface Row {
  rel: string;
  head: Head;
  /** The content for the line, or (a large unread file) its slot in the stat cache. */
  content: string | number;
}

/**
 * Walks the source (lstat only, synchronously: Node's asynchronous lstat cost five times the CPU on
 * a 200 000-file tree) and streams each entry into the digest. Files whose stat the cache does not
 * know are read; from the first large one on, lines wait for the parallel reads to finish.
 */
export async function hashLocal(path: string, projectDir: string, o: WalkOptions, cache: SourceStatCache): Promise<LocalDigest> {
  const h = createHash("sha256");
  const lines = new Lines((b) => h.update(b));
  const heads = new Heads();
  const waiting: Row[] = [];
  const unread: { abs: string; size: number; slot: number; row: Row }[] = [];
  let readBuf: Buffer | undefined;
  // The cache names files by their path from the project directory (shorter), or absolute outside it.
  const inProject = resolve(projectDir) + "/";
  const inCache = (abs: string) => (abs.startsWith(inProject) ? abs.slice(inProject.length) : abs);
  // The threaded walk names an entry by its directory and name: the directory's cache path is
  // made once, and neither the file's path nor its rel is made at all for a file the cache knows.
  let dir: string | undefined;
  let cacheDir = "";
  const each = (e: WalkedEntry) => {
    const head = heads.of(e.type, e.mode);
    let content: string | number = e.type === "symlink" ? e.linkTarget! : "";
    if (e.type === "file") {
      if (e.dir !== undefined && e.dir !== dir) cacheDir = inCache((dir = e.dir) + "/").slice(0, -1);
      const slot = e.dir === undefined ? cache.match("", inCache(e.abs), e.stat) : cache.match(cacheDir, e.name!, e.stat);
      // Known and in order (nearly every file of a warm plan): its digest goes from the cache's
      // bytes into the lines, with no string made for it.
      if (slot === KNOWN && !waiting.length) {
        if (e.dir === undefined) return lines.file("", e.rel, head, cache.known, cache.knownAt);
        return lines.file(e.relDir!, e.name!, head, cache.known, cache.knownAt);
      }
      content = slot === KNOWN ? cache.knownHex() : slot;
      if (typeof content === "number" && e.size < LARGE) {
        const hex = hashFileSync(e.abs, (readBuf ??= Buffer.allocUnsafe(CHUNK)));
        cache.fill(content, hex);
        content = hex;
      }
    }
    if (typeof content === "number" || waiting.length) {
      const row = { rel: e.rel, head, content };
      waiting.push(row);
      if (typeof content === "number") unread.push({ abs: e.abs, size: e.size, slot: content, row });
    } else lines.line(e.rel, head, content);
  };
  // A tree that was large last time is listed on threads; a small or new one here (a thread's start
  // costs more than a few thousand lstat calls).
  try {
    if (cache.files >= PARALLEL_WALK) await walkLocalParallel(path, projectDir, o, each);
    else walkLocalEach(path, projectDir, o, (e) => each(e as WalkedEntry));
  } catch (e) {
    cache.close();
    throw e;
  }
  let next = 0;
  const reader = async () => {
    const buf = Buffer.allocUnsafe(CHUNK);
    let pair: [Buffer, Buffer] | undefined;
    while (next < unread.length) {
      const u = unread[next++]!;
      const hex = u.size > HUGE_CHUNK ? await hashHugeFile(u.abs, (pair ??= [Buffer.allocUnsafe(HUGE_CHUNK), Buffer.allocUnsafe(HUGE_CHUNK)])) : await hashFileAsync(u.abs, buf);
      cache.fill(u.slot, hex);
      u.row.content = hex;
    }
  };
  await Promise.all(Array.from({ length: Math.min(READERS, unread.length) }, reader));
  cache.save();
  for (const r of waiting) lines.line(r.rel, r.head, r.content as string);
  const fingerprints = lines.end();
  let list: string | undefined;
  return {
    digest: "sha256:" + h.digest("hex"),
    get files() {
      return (list ??= fingerprints());
    },
  };
}

/** An entry's type and mode as the digest line has it ("file 644") and as its fingerprint starts ("f644:"). */
interface Head {
  type: LocalEntry["type"];
  text: string;
  fingerprint: string;
  /** `text` and `fingerprint` as bytes (ASCII). */
  textBytes: Buffer;
  fingerprintBytes: Buffer;
}

/** One Head per type and mode met, not one per entry. */
class Heads {
  private readonly known = new Map<number, Head>();
  private last: { id: number; head?: Head } = { id: -1 };
  of(type: LocalEntry["type"], mode: number): Head {
    const id = mode * 4 + (type === "file" ? 0 : type === "dir" ? 1 : 2);
    // Most entries are like the one before.
    if (id === this.last.id) return this.last.head!;
    let h = this.known.get(id);
    if (h === undefined) {
      const m = mode.toString(8);
      const text = `${type} ${m}`;
      const fingerprint = `${type[0]}${m}:`;
      this.known.set(id, (h = { type, text, fingerprint, textBytes: Buffer.from(text), fingerprintBytes: Buffer.from(fingerprint) }));
    }
    this.last = { id, head: h };
    return h;
  }
}

/**
 * The two texts of a source, line by line: the digest's (`"rel" file 644 "<sha256 hex>"`, handed to
 * `flush` a CHUNK at a time) and the fingerprints' (`"rel","f644:<16 hex>"`, kept for `end`). Written
 * as UTF-8 straight into buffers: strings made and appended 200 000 times were most of a warm
 * plan's time and garbage.
 */
class Lines {
  private readonly text = new Sink();
  private readonly fingerprints = new Sink();
  constructor(private readonly flush: (b: Buffer) => void) {}

  /**
   * A regular file's line, its rel `relDir/name` (or `name` when relDir is ""), its digest the 32
   * bytes of `digest` at `at`.
   */
  file(relDir: string, name: string, head: Head, digest: Buffer, at: number): void {
    const length = relDir.length + 1 + name.length;
    const t = this.text.room(length * 6 + 80, this.flush);
    const f = this.fingerprints.room(length * 6 + 40);
    const start = t.length;
    t.length = writeName(t.buf, t.length, relDir, name);
    f.length = copyBytes(t.buf, start, t.length, f.buf, f.length);
    t.buf[t.length++] = SPACE;
    t.length = copyBytes(head.textBytes, 0, head.textBytes.length, t.buf, t.length);
    t.buf[t.length++] = SPACE;
    t.buf[t.length++] = QUOTE;
    t.length = writeHex(t.buf, t.length, digest, at, 32);
    t.buf[t.length++] = QUOTE;
    t.buf[t.length++] = NEWLINE;
    f.buf[f.length++] = COMMA;
    f.buf[f.length++] = QUOTE;
    f.length = copyBytes(head.fingerprintBytes, 0, head.fingerprintBytes.length, f.buf, f.length);
    f.length = writeHex(f.buf, f.length, digest, at, 8);
    f.buf[f.length++] = QUOTE;
    f.buf[f.length++] = NEWLINE;
  }

  /** Any entry's line, its content (a digest's hex, a link's target, "" for a directory) as a string. */
  line(rel: string, head: Head, content: string): void {
    // One line per entry; JSON-quoted strings keep newlines in names from forging lines.
    const name = JSON.stringify(rel);
    if (head.type === "symlink") {
      this.text.write(`${name} ${head.text} ${JSON.stringify(content)}\n`, this.flush);
      this.fingerprints.write(`${name},${JSON.stringify(head.fingerprint + content)}\n`);
    } else {
      // A digest (or nothing, for a directory): no character to escape.
      this.text.write(`${name} ${head.text} "${content}"\n`, this.flush);
      this.fingerprints.write(`${name},"${head.fingerprint}${content.slice(0, 16)}"\n`);
    }
  }

  /** Flushes the digest's text; the fingerprints' text as a string once the returned function is called. */
  end(): () => string {
    this.text.flushAll(this.flush);
    const kept = this.fingerprints.take();
    return () => {
      let text = "";
      for (const b of kept.splice(0)) text += b.toString();
      return text;
    };
  }
}

/**
 * Bytes written into CHUNK-sized buffers, each full one flushed or (without `flush`) kept. The
 * first buffer is small, so that its first flush comes within the first few dozen lines, while V8
 * still runs Lines.file unoptimized: met first in optimized code, that rare path deoptimized it
 * (once per Sink), and each recompile of it took 30-70 ms of a V8 thread at load 5.
 */
class Sink {
  buf = Buffer.allocUnsafe(FIRST_CHUNK);
  length = 0;
  private readonly kept: Buffer[] = [];

  /** Makes room for `need` more bytes. */
  room(need: number, flush?: (b: Buffer) => void): this {
    if (this.length + need <= this.buf.length) return this;
    const full = this.buf.subarray(0, this.length);
    if (flush) flush(full);
    else this.kept.push(full);
    // A flushed buffer's bytes are in the digest already: it is written over (once it is CHUNK long).
    if (!flush || need > this.buf.length || this.buf.length < CHUNK) this.buf = Buffer.allocUnsafe(Math.max(CHUNK, need));
    this.length = 0;
    return this;
  }

  write(s: string, flush?: (b: Buffer) => void): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    this.room(s.length * 3, flush);
    this.length += this.buf.write(s, this.length);
  }

  flushAll(flush: (b: Buffer) => void): void {
    if (this.length) flush(this.buf.subarray(0, this.length));
    this.length = 0;
  }

  take(): Buffer[] {
    if (this.length) this.kept.push(this.buf.subarray(0, this.length));
    this.length = 0;
    return this.kept.splice(0);
  }
}

/**
 * `JSON.stringify(rel)` as UTF-8 at `p`, rel being `dir/name` (or `name` when dir is ""), with room
 * for 6 bytes per UTF-16 unit; the end. A rel of plain ASCII (nearly all) is copied character by
 * character; one with anything JSON escapes or that is not ASCII goes through JSON.stringify.
 */
function writeName(buf: Buffer, p: number, dir: string, name: string): number {
  buf[p] = QUOTE;
  let q = p + 1;
  for (let i = 0; i < dir.length; i++) {
    const c = dir.charCodeAt(i);
    if (c < 0x20 || c === QUOTE || c === BACKSLASH || c >= 0x80) return p + buf.write(JSON.stringify(dir + "/" + name), p);
    buf[q++] = c;
  }
  if (dir.length) buf[q++] = SLASH;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === QUOTE || c === BACKSLASH || c >= 0x80) return p + buf.write(JSON.stringify(dir.length ? dir + "/" + name : name), p);
    buf[q++] = c;
  }
  buf[q++] = QUOTE;
  return q;
}

/** Bytes [start, end) of `from` at `p` of `to` (a loop: Buffer.copy costs more for a few bytes); the end. */
function copyBytes(from: Buffer, start: number, end: number, to: Buffer, p: number): number {
  for (let i = start; i < end; i++) to[p++] = from[i]!;
  return p;
}

/** The first `n` bytes of `from` at `at`, in lower-case hex, at `p`; the end. */
function writeHex(buf: Buffer, p: number, from: Buffer, at: number, n: number): number {
  for (let i = at; i < at + n; i++) {
    const b = from[i]!;
    buf[p++] = HEX[b >> 4]!;
    buf[p++] = HEX[b & 15]!;
  }
  return p;
}

const HEX = Buffer.from("0123456789abcdef");
const SPACE = 0x20;
const QUOTE = 0x22;
const COMMA = 0x2c;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;
const SLASH = 0x2f;

const CHUNK = 1 << 20;
const FIRST_CHUNK = 4096;

function hashFileSync(abs: string, buf: Buffer): string {
  const h = createHash("sha256");
  const fd = openSync(abs, "r");
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

/** Reads of a file larger than this go HUGE_CHUNK at a time into two buffers, the next read running while the last is hashed. */
const HUGE_CHUNK = 4 << 20;

/**
 * hashFileAsync for a large file, its next read under way while the last one is hashed: 0.63 s
 * instead of 0.93 s for a 965 MB tarball() base in the page cache (openssl dgst: 1.0 s).
 */
async function hashHugeFile(abs: string, [a, b]: [Buffer, Buffer]): Promise<string> {
  const h = createHash("sha256");
  const f = await open(abs, "r");
  let pending = f.read(a, 0, a.length, null);
  try {
    for (;;) {
      const { bytesRead, buffer } = await pending;
      if (bytesRead === 0) break;
      pending = f.read(buffer === a ? b : a, 0, a.length, null);
      h.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    // A read still running when the hash failed is waited for: the descriptor is closed after it.
    await pending.catch(() => undefined);
    await f.close();
  }
  return h.digest("hex");
}

async function hashFileAsync(abs: string, buf: Buffer): Promise<string> {
  const h = createHash("sha256");
  const f = await open(abs, "r");
  try {
    for (;;) {
      const { bytesRead } = await f.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await f.close();
  }
  return h.digest("hex");
}
