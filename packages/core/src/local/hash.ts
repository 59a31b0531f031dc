// Content digest of a local source (or a read-only bind): relative path, type, mode, symlink target
// and bytes of every entry; never mtime, never the absolute host path.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import type { SourceStatCache } from "./statcache.ts";
import { walkLocalEach, type WalkOptions } from "./walk.ts";

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
  head: string;
  /** The content for the line, or (a large unread file) its slot in the stat cache. */
  content: string | number;
}

/**
 * Walks the source (lstat only, synchronously: Node's asynchronous lstat cost five times the CPU on
 * a 200 000-file tree) and streams each entry into the digest. Files whose stat the cache does not
 * know are read; from the first large one on, lines wait for the parallel reads to finish.
 */
export async function hashLocal(path: string, projectDir: string, o: WalkOptions, cache: SourceStatCache): Promise<LocalDigest> {
  let files = "";
  const h = createHash("sha256");
  let text = "";
  const line = (rel: string, head: string, content: string) => {
    // One line per entry; JSON-quoted strings keep newlines in names from forging lines.
    const name = JSON.stringify(rel);
    text += `${name} ${head} ${JSON.stringify(content)}\n`;
    if (text.length > CHUNK) {
      h.update(text);
      text = "";
    }
    const fingerprint = head[0] + head.slice(head.indexOf(" ") + 1) + ":" + (head[0] === "f" ? content.slice(0, 16) : content);
    files += `${name},${JSON.stringify(fingerprint)}\n`;
  };
  // "file 644" and its like: one string each, not one per entry.
  const heads = new Map<string, string>();
  const waiting: Row[] = [];
  const unread: { abs: string; slot: number; row: Row }[] = [];
  let readBuf: Buffer | undefined;
  walkLocalEach(path, projectDir, o, (e) => {
    const key = `${e.type} ${e.mode.toString(8)}`;
    let head = heads.get(key);
    if (head === undefined) heads.set(key, (head = key));
    let content: string | number = e.type === "symlink" ? e.linkTarget! : "";
    if (e.type === "file") {
      content = cache.match(e.abs, e.stat!);
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
  h.update(text);
  return { digest: "sha256:" + h.digest("hex"), files };
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
