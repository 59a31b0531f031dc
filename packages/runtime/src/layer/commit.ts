// Turns an overlay upper dir into a reproducible OCI layer tar (DESIGN §3, §5): entries in byte
// order of names, directory by directory (like `tar --sort=name`); mtimes clamped to
// SOURCE_DATE_EPOCH; no atime/ctime; numeric uid/gid kept, no user names; overlay whiteouts (0/0
// char devices) become `.wh.<name>`, opaque dirs get a `.wh..wh..opq` entry; overlay's private
// xattrs are dropped, others kept as SCHILY.xattr pax records; hardlinks become tar hardlinks.
//
// Files are read synchronously straight into large output buffers (page-cache reads are memcpy
// speed). Committing to the store reads them into the shared ring of store/blob-pipe.ts, whose
// second thread hashes (and, for a blob, writes) them: no copy, and reading overlaps sha256.
//
// A stage's commit (layer/adopt.ts) keeps no tar at all: the upper dir becomes the extracted layer
// and only the digest is taken. ensureLayerTar() writes the same tar again from that dir when an
// export or push needs it, and checks that it still has the layer's digest.
import { closeSync, lstatSync, lutimesSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from "node:fs";
import { resolve } from "node:path";
import { Readable } from "node:stream";
import { setImmediate as nextTurn } from "node:timers/promises";
import { DigestMismatchError, nativeLister, nonUtf8Name, SCAN_NUMBERS, UserError, type NativeLister } from "@mstage/core";
import type { Digest } from "../oci/digest.ts";
import { HASHER_WORTH, openBlobPipe, openDigestPipe, warmHasher, type Ring } from "../store/blob-pipe.ts";
import type { Store } from "../store/store.ts";
import type { LayerRef } from "../store/results.ts";
import { encodeHeader, END_OF_ARCHIVE, padding, writeSimpleHeader, type TarHeader, type TarType } from "./tar-header.ts";
import { isOverlayOpaque, isOverlayWhiteout, WH_OPAQUE, WH_PREFIX } from "./whiteouts.ts";
import { isOverlayPrivate, readTreeXattrs, type Xattrs } from "./xattr.ts";

export interface CommitOptions {
  /** Clamp for every mtime (seconds); DESIGN default 0. */
  sourceDateEpoch: number;
  /** Things worth telling the user (skipped sockets). */
  onNote?: (message: string) => void;
  /** The tree's xattrs, when the caller has read them already (readTreeXattrs). */
  xattrs?: Map<string, Xattrs>;
  /** The tree's listing, when the caller has made it already (scanTree). */
  scan?: TreeScan;
}

const CHUNK = 1 << 20;

/** What the tar makes of an entry; "other" (sockets, devices) it leaves out. */
export type EntryKind = "whiteout" | "directory" | "symlink" | "file" | "fifo" | "other";

/**
 * One entry of a tree, in the order its tar holds them: what its tar header needs of its lstat.
 * Plain numbers, not the Stats (with its four Dates, ~1 KB an entry listed): a layer can hold
 * hundreds of thousands of entries.
 */
export interface TreeEntry {
  /** Path below the tree's root: "a/b". */
  path: string;
  /** Its name in the tar: the path, with ".wh." before a whiteout's name; no trailing "/". */
  tarName: string;
  kind: EntryKind;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  /** "dev:ino" of a file with more than one link (the tar's hardlinks), else "". */
  linkId: string;
}

const S_IFMT = 0o170000;
const KINDS = new Map<number, EntryKind>([
  [0o040000, "directory"],
  [0o120000, "symlink"],
  [0o100000, "file"],
  [0o010000, "fifo"],
]);
const S_IFCHR = 0o020000;

/** `entry`'s facts from its lstat `st` (again, after normalising changed the entry). */
export function setFacts(entry: Pick<TreeEntry, "path" | "tarName"> & Partial<TreeEntry>, st: Stats): TreeEntry {
  return factsOf(entry, st.mode, st.uid, st.gid, st.size, st.mtimeMs, st.nlink, st.dev, st.ino, isOverlayWhiteout(st));
}

/** The same from the numbers of an lstat (the native lister's). */
function factsOf(entry: Pick<TreeEntry, "path" | "tarName"> & Partial<TreeEntry>, mode: number, uid: number, gid: number, size: number, mtimeMs: number, nlink: number, dev: number, ino: number, whiteout: boolean): TreeEntry {
  entry.kind = whiteout ? "whiteout" : (KINDS.get(mode & S_IFMT) ?? "other");
  entry.mode = mode & 0o7777;
  entry.uid = uid;
  entry.gid = gid;
  entry.size = size;
  entry.mtimeMs = mtimeMs;
  entry.linkId = entry.kind === "file" && nlink > 1 ? `${dev}:${ino}` : "";
  return entry as TreeEntry;
}

/** A tree listed and lstat'ed once, for its tar and for what normalising an upper dir changes. */
export interface TreeScan {
  /** The tree's root, absolute. */
  root: string;
  /** Every entry below the root: a dir's children in byte order of their tar names, right after it. */
  entries: TreeEntry[];
  /** Overlay whiteouts (0/0 character devices). */
  whiteouts: string[];
  /** Sockets and devices, which a layer tar leaves out. */
  unsupported: string[];
  /**
   * The tree's xattrs as readTreeXattrs gives them, when the native lister read them in the same
   * walk (it listed every directory); else undefined, and getfattr reads them.
   */
  xattrs?: Map<string, Xattrs>;
}

const isAscii = (s: string) => /^[\x00-\x7f]*$/.test(s);

/**
 * Lists `dir` depth first, with one lstat per entry. Names sort by their UTF-8 bytes (like
 * `tar --sort=name`); plain string order is the same for ASCII names, so only a directory with
 * other names pays for their bytes. With the native lister (packages/core/native/listdir.c), each
 * directory is one call that reads its entries' xattrs too: 28 000 entries in ~65 ms instead of
 * ~80 ms, and no getfattr process beside it. `onLarge` runs once the files listed pass
 * HASHER_WORTH bytes. `lister` null: lstat and getfattr, whether or not this process has the addon.
 */
export function scanTree(dir: string, onLarge?: () => void, lister: NativeLister | null = nativeLister() ?? null): TreeScan {
  const scanning = startScan(dir, onLarge, lister);
  for (const _ of scanning.steps);
  return scanning.scan;
}

/** A scan under way: `steps` lists one directory a step, filling `scan`. */
interface Scanning {
  scan: TreeScan;
  steps: Generator<void>;
  /** The xattrs the native lister has read so far (scan.xattrs, once it has read every directory's). */
  xattrs: Map<string, Xattrs>;
  /**
   * Entries of scan.entries whose facts no later step or normalising changes: every one listed so
   * far, up to the first that normalising rewrites (a whiteout, or a directory whose entries it
   * removes or replaces: its mtime changes) or the first whose xattrs the native lister could not
   * read. All of them once the scan is done, if none.
   */
  settled(): number;
}

function startScan(dir: string, onLarge: (() => void) | undefined, lister: NativeLister | null): Scanning {
  // Paths by concatenation: path.join normalises each one again, a few percent of a commit's time.
  const root = resolve(dir);
  const scan: TreeScan = { root, entries: [], whiteouts: [], unsupported: [] };
  const xattrs = new Map<string, Xattrs>();
  let allNative = !!lister;
  let unsettled: number | undefined;
  let bytes = 0;
  type Child = { key: string; entry: TreeEntry };
  const byKey = (children: Child[]) => {
    if (children.every((c) => isAscii(c.key))) children.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    else {
      const keyBytes = new Map(children.map((c) => [c, Buffer.from(c.key, "utf8")]));
      children.sort((a, b) => Buffer.compare(keyBytes.get(a)!, keyBytes.get(b)!));
    }
  };
  const listJs = (abs: string, rel: string): Child[] => {
    const names = readdirSync(abs);
    if (names.some((n) => n.includes("\uFFFD"))) refuseNonUtf8(abs, rel);
    const children = names.map((name) => {
      const st = lstatSync(abs + "/" + name);
      const key = isOverlayWhiteout(st) ? WH_PREFIX + name : name;
      const path = rel ? rel + "/" + name : name;
      return { key, entry: setFacts({ path, tarName: key === name ? path : rel ? rel + "/" + key : key }, st) };
    });
    byKey(children);
    return children;
  };
  // In byte order of names already; whiteouts' keys (".wh." + name) may need another order.
  const listNative = (abs: string, rel: string): Child[] | undefined => {
    const l = lister!.scan(abs, rel === "");
    if (l === undefined) return undefined;
    const st = l.stats;
    let whiteouts = false;
    const children = (l.names === "" ? [] : l.names.split("\0")).map((name, i) => {
      const k = i * SCAN_NUMBERS;
      const mode = st[k]!;
      const whiteout = (mode & S_IFMT) === S_IFCHR && st[k + 8] === 0;
      whiteouts ||= whiteout;
      const key = whiteout ? WH_PREFIX + name : name;
      const path = rel ? rel + "/" + name : name;
      const entry = factsOf({ path, tarName: key === name ? path : rel ? rel + "/" + key : key }, mode, st[k + 1]!, st[k + 2]!, st[k + 3]!, st[k + 4]!, st[k + 5]!, st[k + 6]!, st[k + 7]!, whiteout);
      return { key, entry };
    });
    const a = l.attrs;
    for (let j = 0; j < a.length; j += 3) {
      const i = a[j] as number;
      const path = i < 0 ? rel : children[i]!.entry.path;
      const list = xattrs.get(path);
      if (list) list.push([a[j + 1] as string, a[j + 2] as Buffer]);
      else xattrs.set(path, [[a[j + 1] as string, a[j + 2] as Buffer]]);
    }
    if (whiteouts) byKey(children);
    return children;
  };
  // `at`: the directory's index in scan.entries (-1: the root). Its entries come right after it.
  function* walk(rel: string, at: number): Generator<void> {
    const abs = rel ? root + "/" + rel : root;
    let children = lister && listNative(abs, rel);
    if (!children) {
      allNative = false;
      // Its entries' xattrs are getfattr's to read, after the scan.
      unsettled ??= scan.entries.length;
      children = listJs(abs, rel);
    }
    if (unsettled === undefined && children.some((c) => c.entry.kind === "whiteout" || c.entry.kind === "other")) {
      unsettled = at >= 0 ? at : scan.entries.length + children.findIndex((c) => c.entry.kind === "whiteout" || c.entry.kind === "other");
    }
    yield;
    for (const { entry } of children) {
      scan.entries.push(entry);
      if (onLarge && bytes <= HASHER_WORTH && (bytes += entry.kind === "file" ? entry.size : 0) > HASHER_WORTH) onLarge();
      if (entry.kind === "directory") yield* walk(entry.path, scan.entries.length - 1);
      else if (entry.kind === "whiteout") scan.whiteouts.push(entry.path);
      else if (entry.kind === "other") scan.unsupported.push(entry.path);
    }
  }
  function* steps(): Generator<void> {
    yield* walk("", -1);
    if (allNative) scan.xattrs = xattrs;
  }
  return { scan, steps: steps(), xattrs, settled: () => unsettled ?? scan.entries.length };
}

/**
 * Refuses a directory holding a name that is not UTF-8: the layer would not hold it as the step
 * left it.
 */
function refuseNonUtf8(abs: string, rel: string): void {
  const shown = nonUtf8Name(abs);
  if (shown !== undefined) throw new UserError(`/${rel ? rel + "/" : ""}${shown} is a file name that is not UTF-8, and a layer holds UTF-8 names only: rename or remove it in the step that makes it`);
}

function paxXattrs(attrs: Xattrs | undefined): TarHeader["pax"] {
  if (!attrs) return undefined;
  const kept = attrs.filter(([n]) => !isOverlayPrivate(n)).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return kept.length ? kept.map(([n, v]) => [`SCHILY.xattr.${n}`, v]) : undefined;
}

/** Where the tar's bytes go: buffers lent by `take()`, filled in order and handed back by `give()`. */
type Sink = Pick<Ring, "take" | "give">;

/** Fills the sink's buffers; headers and padding are copied in, file contents read in directly. */
class Output {
  buf: Buffer;
  pos = 0;
  total = 0;

  constructor(private readonly sink: Sink) {
    this.buf = sink.take();
  }

  put(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(data.length - off, this.buf.length - this.pos);
      data.copy(this.buf, this.pos, off, off + n);
      this.advance(n);
      off += n;
    }
  }

  /** An entry's header: written in place when it is one plain ustar block and fits the buffer, else encoded and copied. */
  header(name: string, type: TarType, mode: number, uid: number, gid: number, size: number, mtime: number, linkname?: string, pax?: TarHeader["pax"]): void {
    if (!pax && this.buf.length - this.pos >= 512 && writeSimpleHeader(this.buf, this.pos, name, type, mode, uid, gid, size, mtime, linkname)) {
      this.advance(512);
    } else {
      this.put(encodeHeader({ name, type, mode, uid, gid, size, mtime, linkname, pax }));
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
      this.sink.give(this.pos);
      this.buf = this.sink.take();
      this.pos = 0;
    }
  }

  /** The last, partly filled buffer; the one lent after it stays unused. */
  end(): void {
    if (this.pos) this.sink.give(this.pos);
    this.pos = 0;
  }
}

/**
 * Writes the layer tar of a scanned tree into `sink`, yielding (nothing) after every entry and
 * every buffer of a file, so the caller can hand on what was given or let the event loop run.
 * With `settled`, the scan is still under way: only that many entries may be written yet, and it
 * yields true while it waits for more (until `settled` says undefined: all of them).
 */
function* writeTar(scan: TreeScan, xattrs: Map<string, Xattrs>, sink: Sink, opts: CommitOptions, setTimes = false, settled?: () => number | undefined): Generator<boolean | void> {
  const out = new Output(sink);
  const links = new Map<string, string>();
  const epoch = opts.sourceDateEpoch;
  const root = scan.root;
  const attrsOf = (path: string) => (xattrs.size ? xattrs.get(path) : undefined);

  function* copyFile(file: string, size: number, tarName: string): Generator<void> {
    const fd = openSync(file, "r");
    try {
      let left = size;
      while (left > 0) {
        const want = Math.min(left, out.buf.length - out.pos);
        const n = readSync(fd, out.buf, out.pos, want, null);
        if (n === 0) throw new Error(`${file} shrank while it was being committed (tar entry ${tarName})`);
        out.advance(n);
        left -= n;
        yield;
      }
    } finally {
      closeSync(fd);
    }
    out.zeros(padding(size));
  }

  for (let i = 0; ; i++) {
    for (let n = settled?.(); n !== undefined && i >= n; n = settled?.()) yield true;
    if (i >= scan.entries.length) break;
    const { path, tarName, kind, mode, uid, gid, size, mtimeMs, linkId } = scan.entries[i]!;
    const mtime = Math.min(Math.floor(mtimeMs / 1000), epoch);
    if (setTimes && kind !== "other" && mtimeMs !== mtime * 1000) lutimesSync(root + "/" + path, mtime, mtime);
    if (kind === "whiteout") {
      out.header(tarName, "file", 0, 0, 0, 0, mtime);
    } else if (kind === "directory") {
      const attrs = attrsOf(path);
      out.header(tarName + "/", "directory", mode, uid, gid, 0, mtime, undefined, paxXattrs(attrs));
      if (isOverlayOpaque(attrs)) out.header(`${tarName}/${WH_OPAQUE}`, "file", 0, 0, 0, 0, mtime);
    } else if (kind === "symlink") {
      out.header(tarName, "symlink", mode, uid, gid, 0, mtime, readlinkSync(root + "/" + path));
    } else if (kind === "file") {
      const first = linkId ? links.get(linkId) : undefined;
      if (first !== undefined) {
        out.header(tarName, "link", mode, uid, gid, 0, mtime, first);
      } else {
        if (linkId) links.set(linkId, tarName);
        out.header(tarName, "file", mode, uid, gid, size, mtime, undefined, paxXattrs(attrsOf(path)));
        if (size > 0) yield* copyFile(root + "/" + path, size, tarName);
      }
    } else if (kind === "fifo") {
      out.header(tarName, "fifo", mode, uid, gid, 0, mtime, undefined, paxXattrs(attrsOf(path)));
    }
    yield;
  }
  out.put(END_OF_ARCHIVE);
  out.end();
  if (scan.unsupported.length) {
    const n = scan.unsupported.length;
    opts.onNote?.(`not in the layer: ${n} socket or device file(s) (${scan.unsupported.slice(0, 5).join(", ")})`);
  }
}

/**
 * The tree's scan and its xattrs: the native lister reads them in the scan; else (or where it could
 * not) getfattr walks the tree in its own process while this one lists it. `hashing`: the tar goes
 * into a ring, whose thread a large tree's scan starts early.
 */
async function scanWithXattrs(dir: string, opts: CommitOptions, hashing: boolean): Promise<{ scan: TreeScan; xattrs: Map<string, Xattrs> }> {
  const onLarge = hashing ? warmHasher : undefined;
  const known = opts.xattrs ?? opts.scan?.xattrs;
  if (known) return { scan: opts.scan ?? scanTree(dir, onLarge), xattrs: known };
  let reading = opts.scan || !nativeLister() ? readTreeXattrs(dir) : undefined;
  let scan: TreeScan;
  try {
    scan = opts.scan ?? scanTree(dir, onLarge);
  } catch (e) {
    await reading?.catch(() => undefined);
    throw e;
  }
  if (scan.xattrs) {
    reading?.catch(() => undefined);
    return { scan, xattrs: scan.xattrs };
  }
  reading ??= readTreeXattrs(dir);
  return { scan, xattrs: await reading };
}

async function* layerChunks(upperDir: string, opts: CommitOptions): AsyncGenerator<Buffer> {
  const { scan, xattrs } = await scanWithXattrs(upperDir, opts, false);
  const ready: Buffer[] = [];
  let lent: Buffer | undefined;
  const sink: Sink = {
    take: () => (lent = Buffer.allocUnsafe(CHUNK)),
    give: (n) => void ready.push(lent!.subarray(0, n)),
  };
  const drain = function* () {
    while (ready.length) yield ready.shift()!;
  };
  for (const _ of writeTar(scan, xattrs, sink, opts)) yield* drain();
  yield* drain();
}

/** The layer tar of `upperDir`, as a stream. Must run where the upper dir's files are readable (the user namespace). */
export function commitLayer(upperDir: string, opts: CommitOptions): Readable {
  return Readable.from(layerChunks(upperDir, opts), { objectMode: false, highWaterMark: 2 });
}

/** Bytes between two turns of the event loop while a tar is written into the ring (progress, signals). */
const TURN_EVERY = 64 << 20;

async function fillRing(ring: Ring, upperDir: string, opts: CommitOptions): Promise<void> {
  const { scan, xattrs } = await scanWithXattrs(upperDir, opts, true);
  const into = counting(ring);
  await finishWriting(writeTar(scan, xattrs, into.sink, opts), ring, into);
}

/** The ring as a writer's sink, counting the bytes given. */
function counting(ring: Ring): { sink: Sink; given: number } {
  const into = {
    given: 0,
    sink: {
      take: () => ring.take(),
      give: (n: number) => {
        ring.give(n);
        into.given += n;
      },
    },
  };
  return into;
}

/** Runs `writer` to its end, with a turn of the event loop every TURN_EVERY bytes; stops early once the ring's thread has failed. */
async function finishWriting(writer: Generator<boolean | void>, ring: Ring, into: { given: number }): Promise<void> {
  let sinceTurn = into.given;
  for (let step = writer.next(); !step.done; step = writer.next()) {
    if (into.given - sinceTurn < TURN_EVERY) continue;
    sinceTurn = into.given;
    if (ring.failed) return;
    await nextTurn();
  }
}

/**
 * A stage's commit: the diff-id and size of `upperDir`'s layer tar once `normalise` has rewritten
 * what it must, with every mtime below `upperDir` set to what the tar says (whole seconds, at most
 * SOURCE_DATE_EPOCH), as an extracted layer has them, in the same walk. The tar is hashed while the
 * tree is still being scanned: this thread lists a directory, then writes what is settled into the
 * ring for as long as the ring has room, then lists the next, so the hashing thread starts within
 * the first directories instead of after the whole scan (bench/compare.sh commit: the scan is
 * ~65 ms of a 0.8 s commit, and the hashing thread is its critical path). Once the scan is done,
 * `normalise` runs (entries it changes were not written yet: see Scanning.settled), and the rest of
 * the tar follows. Without the native lister (`lister` null) nothing is settled before the scan
 * ends, and getfattr reads the xattrs meanwhile: scan, normalise, hash, in turn.
 */
export async function digestScanning(
  upperDir: string,
  opts: CommitOptions,
  normalise: (scan: TreeScan, xattrs: Map<string, Xattrs>) => Promise<void>,
  lister: NativeLister | null = nativeLister() ?? null,
): Promise<LayerRef> {
  const pipe = openDigestPipe();
  const ring = pipe.ring;
  const scanning = startScan(upperDir, warmHasher, lister);
  const { scan, xattrs } = scanning;
  const reading = lister ? undefined : readTreeXattrs(scan.root);
  reading?.catch(() => undefined);
  let done = false;
  const into = counting(ring);
  const writer = writeTar(scan, xattrs, into.sink, opts, true, () => (done ? undefined : scanning.settled()));
  try {
    // A step of the writer takes at most one buffer: with room for one it never waits for the
    // hashing thread while there is scanning to do.
    for (const _ of scanning.steps) {
      while (ring.room > 0) {
        const step = writer.next();
        if (step.done || step.value === true) break;
      }
    }
    if (!scan.xattrs) for (const [path, attrs] of await (reading ?? readTreeXattrs(scan.root))) xattrs.set(path, attrs);
    await normalise(scan, xattrs);
    done = true;
    await finishWriting(writer, ring, into);
  } catch (e) {
    await pipe.finish().catch(() => undefined);
    throw e;
  }
  const { digest, size } = await pipe.finish();
  return { diffId: digest, size };
}

/**
 * Commits `upperDir` as an uncompressed layer blob in one pass: this thread reads the files into the
 * tar while a second one hashes and writes it (store/blob-pipe.ts), as `tar -c | openssl dgst` does.
 * With `expected`, a tar of another digest is not stored (DigestMismatchError).
 */
export async function commitLayerToStore(store: Store, upperDir: string, opts: CommitOptions, expected?: Digest): Promise<LayerRef> {
  const pipe = await openBlobPipe(store.layout);
  try {
    await fillRing(pipe.ring, upperDir, opts);
  } catch (e) {
    await pipe.abort();
    throw e;
  }
  const { digest, size } = await pipe.finish(expected);
  return { diffId: digest, size };
}

/**
 * The diff-id and size of `upperDir`'s layer tar, which is not written anywhere: hashed on a second
 * thread as it is read (a stage's commit, which also clamps times, is digestScanning).
 */
export async function digestLayer(upperDir: string, opts: CommitOptions): Promise<LayerRef> {
  const pipe = openDigestPipe();
  try {
    await fillRing(pipe.ring, upperDir, opts);
  } catch (e) {
    await pipe.finish().catch(() => undefined);
    throw e;
  }
  const { digest, size } = await pipe.finish();
  return { diffId: digest, size };
}

/**
 * The mtime clamp that gives back a layer's tar from its extracted dir: that dir's times were
 * clamped and truncated when it was committed or extracted, so they are taken as they are.
 */
const AS_STORED = Number.MAX_SAFE_INTEGER;

/** The tar of a layer's extracted dir, written again as it was committed (its digest is for the caller to check). */
export function storedLayerTar(dir: string): Readable {
  return commitLayer(dir, { sourceDateEpoch: AS_STORED });
}

/** A layer dir whose tar no longer has the layer's digest: changed outside mstage. */
export function changedLayerError(diffId: Digest, dir: string, got: string, cause?: unknown): UserError {
  return new UserError(
    `layer ${diffId}: its files in ${dir} no longer give its tar (they hash to ${got}), so the store was changed outside mstage; run \`mstage gc --verify\` to drop it, then build again`,
    { cause },
  );
}

/**
 * Makes sure the store holds the tar blob of layer `diffId`. A layer committed by a stage
 * (layer/adopt.ts) has only its extracted dir; its tar is written again from it, as it was
 * committed, and stored only if it still has the digest `diffId`. Runs in the user namespace.
 */
export async function ensureLayerTar(store: Store, diffId: Digest): Promise<void> {
  if (store.hasBlob(diffId)) return;
  const dir = store.layout.layer(diffId);
  if (!store.hasLayerDir(diffId)) {
    throw new UserError(`layer ${diffId} is not in the store ${store.root} (neither its tar nor its files); rebuild with --no-cache`);
  }
  try {
    await commitLayerToStore(store, dir, { sourceDateEpoch: AS_STORED }, diffId);
  } catch (e) {
    if (e instanceof DigestMismatchError) throw changedLayerError(diffId, dir, e.actual, e);
    throw e;
  }
}

/** Whether layer `diffId`'s extracted dir still gives its tar: for `gc --verify` of a layer stored without its tar. */
export async function layerDirGivesTar(diffId: Digest, dir: string): Promise<boolean> {
  return (await digestLayer(dir, { sourceDateEpoch: AS_STORED })).diffId === diffId;
}
