// Content digest of a local source (or a read-only bind): relative path, type, mode, symlink target
// and bytes of every entry; never mtime, never the absolute host path.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { resolve } from "node:path";
import type { SourceStatCache } from "./statcache.ts";
import { walkLocalEach, type LocalEntry, type WalkOptions } from "./walk.ts";

export interface LocalDigest {
  /** "sha256:<hex>" over the whole entry list. */
  digest: string;
  /**
   * A short fingerprint of each entry, kept in the state to name the files that changed: a line
   * `"rel","fingerprint"` per entry (StageInputs.files).
   */
  files: string;
}

/** Files whose contents are read at the same time: enough to keep the disk and the thread pool busy. */
const READERS = 8;
/**
 * Files this size or larger are read asynchronously, READERS at a time. Smaller ones are read in
 * place: reading 20 000 files of 150 bytes through fs/promises took 6× the CPU of readSync.
 */
const LARGE = 1 << 20;

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
  walkLocalEach(path, projectDir, o, (e) => {
    const head = heads.of(e.type, e.mode);
    let content: string | number = e.type === "symlink" ? e.linkTarget! : "";
    if (e.type === "file") {
      content = cache.match(e.abs.startsWith(inProject) ? e.abs.slice(inProject.length) : e.abs, e.stat!);
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
  });
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
  return { digest: "sha256:" + h.digest("hex"), files: files.end() };
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
 * UTF-8 text written into one buffer. With `flush`, the buffer is handed on whenever it fills (and
 * at `end`); without, it grows and `end` returns the whole text as one string.
 */
class TextSink {
  private buf = Buffer.allocUnsafe(CHUNK);
  private length = 0;
  constructor(private readonly flush?: (b: Buffer) => void) {}

  write(s: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.length + s.length * 3 > this.buf.length) {
      if (this.flush) {
        this.flush(this.buf.subarray(0, this.length));
        this.length = 0;
      }
      if (s.length * 3 > this.buf.length - this.length) {
        const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + s.length * 3));
        this.buf.copy(bigger, 0, 0, this.length);
        this.buf = bigger;
      }
    }
    this.length += this.buf.write(s, this.length);
  }

  end(): string {
    if (this.flush) {
      this.flush(this.buf.subarray(0, this.length));
      return "";
    }
    return this.buf.toString("utf8", 0, this.length);
  }
}

const CHUNK = 1 << 20;

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
