// Content digest of a local source (or a read-only bind): relative path, type, mode, symlink target
// and bytes of every entry; never mtime, never the absolute host path.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { resolve } from "node:path";
import type { SourceStatCache } from "./statcache.ts";
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
  // Both texts go into buffers as they are made: strings appended 200 000 times become a tree of
  // pieces the collector traces and copies until the end.
  const text = new TextSink((b) => h.update(b));
  const files = new TextSink();
  const line = (rel: string, head: Head, content: string) => {
    // One line per entry; JSON-quoted strings keep newlines in names from forging lines.
    const name = JSON.stringify(rel);
    if (head.type === "symlink") {
      text.write(`${name} ${head.text} ${JSON.stringify(content)}\n`);
      files.write(`${name},${JSON.stringify(head.fingerprint + content)}\n`);
    } else {
      // A digest (or nothing, for a directory): no character to escape.
      text.write(`${name} ${head.text} "${content}"\n`);
      files.write(`${name},"${head.fingerprint}${content.slice(0, 16)}"\n`);
    }
  };
  const heads = new Heads();
  const waiting: Row[] = [];
  const unread: { abs: string; slot: number; row: Row }[] = [];
  let readBuf: Buffer | undefined;
  // The cache names files by their path from the project directory (shorter), or absolute outside it.
  const inProject = resolve(projectDir) + "/";
  const each = (e: WalkedEntry) => {
    const head = heads.of(e.type, e.mode);
    let content: string | number = e.type === "symlink" ? e.linkTarget! : "";
    if (e.type === "file") {
      content = cache.match(e.abs.startsWith(inProject) ? e.abs.slice(inProject.length) : e.abs, e.stat);
      if (typeof content === "number" && e.size < LARGE) {
        const hex = hashFileSync(e.abs, (readBuf ??= Buffer.allocUnsafe(CHUNK)));
        cache.fill(content, hex);
        content = hex;
      }
    }
    if (typeof content === "number" || waiting.length) {
      const row = { rel: e.rel, head, content };
      waiting.push(row);
      if (typeof content === "number") unread.push({ abs: e.abs, slot: content, row });
    } else line(e.rel, head, content);
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
    while (next < unread.length) {
      const u = unread[next++]!;
      const hex = await hashFileAsync(u.abs, buf);
      cache.fill(u.slot, hex);
      u.row.content = hex;
    }
  };
  await Promise.all(Array.from({ length: Math.min(READERS, unread.length) }, reader));
  cache.save();
  for (const r of waiting) line(r.rel, r.head, r.content as string);
  text.end();
  const fingerprints = files.end();
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
}

/** One Head per type and mode met, not one per entry. */
class Heads {
  private readonly known = new Map<number, Head>();
  of(type: LocalEntry["type"], mode: number): Head {
    const id = mode * 4 + (type === "file" ? 0 : type === "dir" ? 1 : 2);
    let h = this.known.get(id);
    if (h === undefined) {
      const m = mode.toString(8);
      this.known.set(id, (h = { type, text: `${type} ${m}`, fingerprint: `${type[0]}${m}:` }));
    }
    return h;
  }
}

/**
 * Text made of many short lines, joined PENDING characters at a time and written as UTF-8 into
 * buffers of CHUNK bytes: each full one handed to `flush` (the digest), or kept for `end` (the
 * fingerprints). Strings appended 200 000 times would instead become a tree of
 * pieces the collector traces and copies until the end.
 */
class TextSink {
  private pending = "";
  private chunk = Buffer.allocUnsafe(CHUNK);
  private length = 0;
  private readonly kept: Buffer[] = [];
  constructor(private readonly flush?: (b: Buffer) => void) {}

  write(s: string): void {
    this.pending += s;
    if (this.pending.length > PENDING) this.move();
  }

  private move(): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.length + this.pending.length * 3 > this.chunk.length) this.next(this.pending.length * 3);
    this.length += this.chunk.write(this.pending, this.length);
    this.pending = "";
  }

  /** The current buffer is done: handed on or kept, and a new one has room for `need` bytes. */
  private next(need: number): void {
    const full = this.chunk.subarray(0, this.length);
    if (this.flush) this.flush(full);
    else this.kept.push(full);
    if (!this.flush || need > CHUNK) this.chunk = Buffer.allocUnsafe(Math.max(CHUNK, need));
    this.length = 0;
  }

  /** The text so far, as a string once the returned function is called. */
  end(): () => string {
    this.move();
    this.next(0);
    const kept = this.kept.splice(0);
    return () => {
      let text = "";
      for (const b of kept.splice(0)) text += b.toString();
      return text;
    };
  }
}

const CHUNK = 1 << 20;
const PENDING = 1 << 16;

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
