// Turns an overlay upper dir into a reproducible OCI layer tar (DESIGN §3, §5): entries in byte
// order of names, directory by directory (like `tar --sort=name`); mtimes clamped to
// SOURCE_DATE_EPOCH; no atime/ctime; numeric uid/gid kept, no user names; overlay whiteouts (0/0
// char devices) become `.wh.<name>`, opaque dirs get a `.wh..wh..opq` entry; overlay's private
// xattrs are dropped, others kept as SCHILY.xattr pax records; hardlinks become tar hardlinks.
//
// Files are read synchronously straight into large output buffers (page-cache reads are memcpy
// speed, and the event loop stays free only between buffers); committing to the store hashes and
// writes them on a second thread, so reading overlaps sha256 and the write.
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { openBlobPipe } from "../store/blob-pipe.ts";
import type { Store } from "../store/store.ts";
import type { LayerRef } from "../store/results.ts";
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from "./tar-header.ts";
import { isOverlayOpaque, isOverlayWhiteout, WH_OPAQUE, WH_PREFIX } from "./whiteouts.ts";
import { isOverlayPrivate, readTreeXattrs, type Xattrs } from "./xattr.ts";

export interface CommitOptions {
  /** Clamp for every mtime (seconds); DESIGN default 0. */
  sourceDateEpoch: number;
  /** Things worth telling the user (skipped sockets). */
  onNote?: (message: string) => void;
  /** The tree's xattrs, when the caller has read them already (readTreeXattrs). */
  xattrs?: Map<string, Xattrs>;
}

const CHUNK = 1 << 20;
const byteOrder = (a: { key: Buffer }, b: { key: Buffer }) => Buffer.compare(a.key, b.key);

interface Child {
  name: string;
  /** The name as it appears in the tar (".wh.x" for a whiteout), the sort key. */
  key: Buffer;
  st: Stats;
}

function paxXattrs(attrs: Xattrs | undefined): TarHeader["pax"] {
  if (!attrs) return undefined;
  const kept = attrs.filter(([n]) => !isOverlayPrivate(n)).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return kept.length ? kept.map(([n, v]) => [`SCHILY.xattr.${n}`, v]) : undefined;
}

/** Fills fixed-size output buffers; full ones wait in `ready` for the generator to yield. */
class Output {
  buf = Buffer.allocUnsafe(CHUNK);
  pos = 0;
  ready: Buffer[] = [];
  total = 0;

  put(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(data.length - off, this.buf.length - this.pos);
      data.copy(this.buf, this.pos, off, off + n);
      this.advance(n);
      off += n;
    }
  }

  zeros(n: number): void {
    while (n > 0) {
      const k = Math.min(n, this.buf.length - this.pos);
      this.buf.fill(0, this.pos, this.pos + k);
      this.advance(k);
      n -= k;
    }
  }

  advance(n: number): void {
    this.pos += n;
    this.total += n;
    if (this.pos === this.buf.length) {
      this.ready.push(this.buf);
      this.buf = Buffer.allocUnsafe(CHUNK);
      this.pos = 0;
    }
  }

  flush(): void {
    if (this.pos) this.ready.push(this.buf.subarray(0, this.pos));
    this.buf = Buffer.allocUnsafe(CHUNK);
    this.pos = 0;
  }

  *drain(): Generator<Buffer> {
    while (this.ready.length) yield this.ready.shift()!;
  }
}

async function* layerChunks(upperDir: string, opts: CommitOptions): AsyncGenerator<Buffer> {
  const xattrs = opts.xattrs ?? (await readTreeXattrs(upperDir));
  const out = new Output();
  const links = new Map<string, string>();
  const epoch = opts.sourceDateEpoch;
  const clamp = (st: Stats) => Math.min(Math.floor(st.mtimeMs / 1000), epoch);
  const skipped: string[] = [];

  function* walk(rel: string): Generator<Buffer> {
    const abs = rel ? join(upperDir, rel) : upperDir;
    const children: Child[] = readdirSync(abs).map((name) => {
      const st = lstatSync(join(abs, name));
      return { name, st, key: Buffer.from(isOverlayWhiteout(st) ? WH_PREFIX + name : name, "utf8") };
    });
    children.sort(byteOrder);
    for (const { name, st, key } of children) {
      const path = rel ? rel + "/" + name : name;
      const tarName = rel ? rel + "/" + key.toString("utf8") : key.toString("utf8");
      const attrs = xattrs.get(path);
      const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: clamp(st), size: 0 };
      if (isOverlayWhiteout(st)) {
        out.put(encodeHeader({ ...base, name: tarName, type: "file", mode: 0, uid: 0, gid: 0 }));
      } else if (st.isDirectory()) {
        out.put(encodeHeader({ ...base, name: tarName + "/", type: "directory", pax: paxXattrs(attrs) }));
        if (isOverlayOpaque(attrs)) {
          out.put(encodeHeader({ ...base, name: `${tarName}/${WH_OPAQUE}`, type: "file", mode: 0, uid: 0, gid: 0 }));
        }
        yield* out.drain();
        yield* walk(path);
      } else if (st.isSymbolicLink()) {
        out.put(encodeHeader({ ...base, name: tarName, type: "symlink", linkname: readlinkSync(join(abs, name)) }));
      } else if (st.isFile()) {
        const id = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? links.get(id) : undefined;
        if (first !== undefined) {
          out.put(encodeHeader({ ...base, name: tarName, type: "link", linkname: first }));
        } else {
          if (st.nlink > 1) links.set(id, tarName);
          out.put(encodeHeader({ ...base, name: tarName, type: "file", size: st.size, pax: paxXattrs(attrs) }));
          yield* out.drain();
          yield* copyFile(join(abs, name), st.size, tarName);
        }
      } else if (st.isFIFO()) {
        out.put(encodeHeader({ ...base, name: tarName, type: "fifo", pax: paxXattrs(attrs) }));
      } else {
        skipped.push(path);
      }
      yield* out.drain();
    }
  }

  function* copyFile(file: string, size: number, tarName: string): Generator<Buffer> {
    const fd = openSync(file, "r");
    try {
      let left = size;
      while (left > 0) {
        const want = Math.min(left, out.buf.length - out.pos);
        const n = readSync(fd, out.buf, out.pos, want, null);
        if (n === 0) throw new Error(`${file} shrank while it was being committed (tar entry ${tarName})`);
        out.advance(n);
        left -= n;
        yield* out.drain();
      }
    } finally {
      closeSync(fd);
    }
    out.zeros(padding(size));
  }

  yield* walk("");
  out.put(END_OF_ARCHIVE);
  out.flush();
  yield* out.drain();
  if (skipped.length) {
    opts.onNote?.(`not in the layer: ${skipped.length} socket or device file(s) (${skipped.slice(0, 5).join(", ")})`);
  }
}

/** The layer tar of `upperDir`, as a stream. Must run where the upper dir's files are readable (the user namespace). */
export function commitLayer(upperDir: string, opts: CommitOptions): Readable {
  return Readable.from(layerChunks(upperDir, opts), { objectMode: false, highWaterMark: 2 });
}

/**
 * Commits `upperDir` as an uncompressed layer blob in one pass: this thread reads the files into the
 * tar while a second one hashes and writes it (store/blob-pipe.ts), as `tar -c | openssl dgst` does.
 */
export async function commitLayerToStore(store: Store, upperDir: string, opts: CommitOptions): Promise<LayerRef> {
  const pipe = await openBlobPipe(store.layout);
  try {
    for await (const chunk of layerChunks(upperDir, opts)) pipe.write(chunk);
  } catch (e) {
    await pipe.abort();
    throw e;
  }
  const { digest, size } = await pipe.finish();
  return { diffId: digest, size };
}
