// Applies an OCI layer tar (plain, gzip or zstd) to a directory, either as an overlay lower dir (whiteouts
// kept as overlay whiteouts) or merged onto a rootfs (whiteouts delete). Nothing is ever written
// outside the target: names are checked, every parent is verified to be a real directory (never a
// symlink) before anything is created under it, and files are created with O_EXCL|O_NOFOLLOW.
import { spawnSync } from "node:child_process";
import {
  close as closeCb,
  fchmod as fchmodCb,
  fchown as fchownCb,
  futimes as futimesCb,
  open as openCb,
  writev as writevCb,
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  linkSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeSync,
  type Stats,
} from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Header } from "tar-stream";
import { HostileLayerError, UserError } from "@mstage/core";
import type { Digest } from "../oci/digest.ts";
import { decompressor, sniffCompression, type LayerCompression } from "./decompress.ts";
import { PaxTap } from "./pax-tap.ts";
import { makeOverlayWhiteout, OVERLAY_OPAQUE_XATTR, WH_OPAQUE, WH_PREFIX } from "./whiteouts.ts";
import { isOverlayPrivate, writeXattrs } from "./xattr.ts";
import { NO_SPACE_ADVICE } from "../store/full.ts";

export interface ApplyOptions {
  /**
   * "overlay": the target is a fresh dir used as an overlay lower dir; `.wh.x` becomes a 0/0 char
   * device and `.wh..wh..opq` the `user.overlay.opaque=y` xattr. "merge": flatten onto an existing
   * rootfs; whiteouts delete what lower layers put there.
   */
  mode: "overlay" | "merge";
  /** Things worth telling the user (skipped device nodes, unmapped owners, refused xattrs). */
  onNote?: (message: string) => void;
  /** Names the layer's source in errors: `tarball ./rootfs.tar`, `layer sha256:… of docker.io/library/debian`. */
  what?: string;
  /** The source's compression (from its media type); default: told by its first bytes. */
  compression?: LayerCompression;
  /**
   * Given every byte of the uncompressed tar in order, instead of applyLayer hashing them: the
   * caller computes the diff-id (the extraction worker hands them to the main thread, which is
   * idle meanwhile), and applyLayer's result has none.
   */
  onTar?: (chunk: Buffer) => void;
}

/** Bytes that are not a (gzip) tar at all, or a damaged one: truncated, garbage header fields, oversized headers. */
export class CorruptLayerError extends UserError {
  override name = "CorruptLayerError";
}

// tar-stream's and zlib's words for what is wrong, in the user's.
const TAR_FAULTS: [RegExp, string][] = [
  [/Invalid tar header/, "it is not a tar archive (its first header is not a tar header)"],
  [/Unexpected end of data/, "it is truncated (the archive ends inside an entry)"],
  [/Invalid header/, "a header holds garbage (a size, mode or checksum field is not a number)"],
  [/Header exceeds max size|exceeds max/i, "a pax or long-name header is larger than mstage accepts"],
  [/unexpected end of file/, "its gzip stream is truncated"],
  [/incorrect header check|invalid (block type|distance|stored block|code)|too many length|header crc|incorrect data check/i, "its gzip stream is corrupt"],
  [/^zstd: .*(truncated|premature end|unexpected end)/i, "its zstd stream is truncated"],
  [/^zstd: /, "its zstd stream is corrupt"],
];

/** A parse failure of the archive itself (not a file system error, not one of ours) as a CorruptLayerError. */
function corruptArchive(e: unknown, what: string, compression: LayerCompression): unknown {
  if (e instanceof UserError) return e;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof code === "string" && !code.startsWith("Z_")) {
    if (code === "ENOSPC" || code === "EDQUOT") return new UserError(`no space left on the device while extracting ${what} (${(e as Error).message}); ${NO_SPACE_ADVICE}`, { cause: e });
    return e;
  }
  const msg = e instanceof Error ? e.message : String(e);
  const why = TAR_FAULTS.find(([re]) => re.test(msg))?.[1] ?? msg;
  return new CorruptLayerError(`${what} is not a valid ${compression === "none" ? "" : `${compression}-compressed `}tar: ${why}`, { cause: e });
}

/** Normalises an archive path to "a/b" ("" for the root); rejects absolute names and "..". */
export function cleanEntryName(raw: string, entry = raw): string {
  if (raw.startsWith("/")) throw new HostileLayerError(entry, "absolute names are not allowed");
  const parts: string[] = [];
  for (const p of raw.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") throw new HostileLayerError(entry, `".." would leave the target`);
    if (p.includes("\0")) throw new HostileLayerError(entry, "NUL in name");
    parts.push(p);
  }
  return parts.join("/");
}

/** An entry's content as tar-stream hands it over (a streamx Readable). */
type EntryBody = AsyncIterable<Buffer> & { resume(): unknown };

/**
 * Regular files over TINY_FILE and up to this size are read whole and created off this thread
 * (libuv's pool), up to IN_FLIGHT files and IN_FLIGHT_BYTES at once: creating a file is the
 * extraction's main cost, and several creations proceed at once where one thread would wait for
 * each in turn. Up to 1 MiB
 * before: the toolchains' binaries and archives (a third of a Go base's bytes) were then written
 * on this thread, which also inflates and parses the tar, and a core stood idle meanwhile.
 */
const SMALL_FILE = 16 << 20;
/**
 * Files up to this size (most of a Debian tree) are created on this thread after all: handing the
 * pool an open, a write, a futimes and a close costs this thread more than making those calls
 * (applying the 970 MB Go base: 15-25 % less CPU, the same wall time or less).
 */
const TINY_FILE = 64 << 10;
const IN_FLIGHT = 64;
const IN_FLIGHT_BYTES = 64 << 20;

const openAsync = promisify(openCb);
const writevAsync = promisify(writevCb);
const fchownAsync = promisify(fchownCb);
const fchmodAsync = promisify(fchmodCb);
const futimesAsync = promisify(futimesCb);
const closeAsync = promisify(closeCb);

/** Writes every byte of `chunks` at the file's offset, as few writev calls as the kernel allows. */
async function writevAll(fd: number, chunks: Buffer[]): Promise<void> {
  let rest = chunks.filter((c) => c.length > 0);
  while (rest.length) {
    let n = (await writevAsync(fd, rest)).bytesWritten;
    let i = 0;
    while (i < rest.length && n >= rest[i]!.length) n -= rest[i++]!.length;
    rest = rest.slice(i);
    if (n > 0) rest[0] = rest[0]!.subarray(n);
  }
}

interface DirMeta {
  abs: string;
  mode: number;
  mtime: Date;
}

class Applier {
  /** Relative dirs known to be real directories inside the target (never symlinks). */
  private readonly safeDirs = new Set<string>([""]);
  /** Paths this layer created, which an opaque marker in merge mode must not delete. */
  private readonly written = new Set<string>();
  private readonly dirMeta = new Map<string, DirMeta>();
  private readonly xattrs: Array<{ rel: string; name: string; value: Buffer }> = [];
  private readonly skippedDevices: string[] = [];
  private readonly unmapped = new Set<number>();
  private whiteoutTemplate: string | null = null;
  /**
   * Files being created off this thread, by relative path. Nothing else touches such a path, or
   * removes a directory (which may hold one), before it is done: a later entry for the same name,
   * a hardlink to it, a parent check through it, or a removal waits for it first. Every parent of
   * such a file was verified a real directory before it started, and only this applier could
   * change that, which it does only after waiting.
   */
  private readonly pending = new Map<string, Promise<void>>();
  private pendingBytes = 0;
  private failed: { error: unknown } | undefined;

  /**
   * A file this applier creates in overlay mode is ours already: the target is a fresh dir, and
   * no dir in it is setgid before finish() (modes are set there), unless the target itself is.
   */
  private readonly createdAs: { uid: number; gid: number } | undefined;
  private readonly umask = process.umask();
  /**
   * In overlay mode on an empty target: every path this applier may have made. Nothing else is
   * there, so a path not in it needs no lstat to know it is absent (one per entry before). Were
   * something there after all, O_EXCL, mkdir and link fail on it rather than write through it.
   */
  private readonly made: Set<string> | undefined;

  constructor(
    private readonly root: string,
    private readonly opts: ApplyOptions,
  ) {
    let setgid = true;
    try {
      setgid = (lstatSync(root).mode & 0o2000) !== 0;
    } catch {
      // Not known: every file is given its owner, as before.
    }
    const uid = process.geteuid?.();
    const gid = process.getegid?.();
    if (opts.mode === "overlay" && !setgid && uid !== undefined && gid !== undefined) this.createdAs = { uid, gid };
    let empty = false;
    try {
      empty = opts.mode === "overlay" && readdirSync(root).length === 0;
    } catch {
      // Not known: every path is looked at, as before.
    }
    if (empty) this.made = new Set();
  }

  /** What is at `rel`, or null: without a system call for a path this applier never made on an empty target. */
  private existing(rel: string): Stats | null {
    return this.made && !this.made.has(rel) ? null : this.lstatOrNull(rel);
  }

  /**
   * How a regular file is made with the fewest calls: created with its mode when the umask keeps
   * it, it has no setuid or setgid bit and its owner is ours already (no chown, which would also
   * clear setuid bits), else created 0600 and given owner, then mode.
   */
  private fileCalls(header: Header): { createMode: number; chown: boolean; chmod: boolean } {
    const mode = (header.mode ?? 0o644) & 0o7777;
    const chown = !(this.createdAs && this.createdAs.uid === (header.uid ?? 0) && this.createdAs.gid === (header.gid ?? 0));
    // A setuid or setgid bit given at creation is cleared by the first write in a user namespace
    // (the write asks for CAP_FSETID, which mstage does not have there), so such a file gets its
    // mode after.
    if (!chown && (mode & ~this.umask) === mode && (mode & 0o6000) === 0) return { createMode: mode, chown, chmod: false };
    return { createMode: 0o600, chown, chmod: true };
  }

  private abs(rel: string): string {
    return rel === "" ? this.root : join(this.root, rel);
  }

  /** Makes sure every ancestor of `rel` is a real directory inside the target, creating missing ones. */
  private async ensureParents(rel: string, entry: string): Promise<void> {
    const parts = rel.split("/");
    let cur = "";
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur ? cur + "/" + parts[i] : parts[i];
      if (this.safeDirs.has(cur)) continue;
      await this.settled(cur);
      const st = this.existing(cur);
      if (!st) {
        mkdirSync(this.abs(cur), 0o755);
        this.made?.add(cur);
      }
      else if (st.isSymbolicLink()) throw new HostileLayerError(entry, `its parent "${cur}" is a symlink, which could lead outside the target`);
      else if (!st.isDirectory()) throw new HostileLayerError(entry, `its parent "${cur}" is not a directory`);
      this.safeDirs.add(cur);
    }
  }

  private lstatOrNull(rel: string): Stats | null {
    try {
      return lstatSync(this.abs(rel));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }

  /** Waits until the file being created at `rel`, if any, is done. */
  private async settled(rel: string): Promise<void> {
    const p = this.pending.get(rel);
    if (p) await p;
    this.throwIfFailed();
  }

  /** Waits for every file being created; throws the first failure among them. */
  async drain(): Promise<void> {
    while (this.pending.size) await Promise.all(this.pending.values());
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failed) throw this.failed.error;
  }

  /** Removes whatever is at `rel` (a dir with its contents), forgetting dirs known below it. */
  private async remove(rel: string, st: Stats | null = this.lstatOrNull(rel)): Promise<void> {
    if (!st) return;
    if (st.isDirectory()) {
      // Files may be being created below it.
      await this.drain();
      rmSync(this.abs(rel), { recursive: true, force: true });
      const prefix = rel + "/";
      for (const d of this.safeDirs) if (d === rel || d.startsWith(prefix)) this.safeDirs.delete(d);
      for (const d of this.dirMeta.keys()) if (d === rel || d.startsWith(prefix)) this.dirMeta.delete(d);
    } else {
      rmSync(this.abs(rel), { force: true });
    }
  }

  private chown(rel: string, uid: number, gid: number, fd?: number): void {
    try {
      if (fd !== undefined) fchownSync(fd, uid, gid);
      else lchownSync(this.abs(rel), uid, gid);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "EINVAL" && code !== "EPERM") throw e;
      this.noteUnmapped(uid, gid);
    }
  }

  /** The id is not mapped in this user namespace (no subordinate range): the file is kept as ours. */
  private noteUnmapped(uid: number, gid: number): void {
    for (const id of [uid, gid]) {
      if (id !== 0 && !this.unmapped.has(id)) {
        this.unmapped.add(id);
        this.opts.onNote?.(`id ${id} is not mapped in this user namespace (add a range to /etc/subuid and /etc/subgid); files owned by it are extracted as root`);
      }
    }
  }

  /**
   * Creates a small file with its whole content off this thread, as the synchronous path does it
   * (O_EXCL|O_NOFOLLOW, owner, mode, mtime); waits first while too much is in flight.
   */
  private async createFile(rel: string, header: Header, content: Buffer[]): Promise<void> {
    const size = content.reduce((n, c) => n + c.length, 0);
    while (this.pending.size >= IN_FLIGHT || (this.pendingBytes > 0 && this.pendingBytes + size > IN_FLIGHT_BYTES)) {
      await Promise.race(this.pending.values());
    }
    this.throwIfFailed();
    const path = this.abs(rel);
    const calls = this.fileCalls(header);
    const work = (async () => {
      const fd = await openAsync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, calls.createMode);
      try {
        await writevAll(fd, content);
        const uid = header.uid ?? 0;
        const gid = header.gid ?? 0;
        if (calls.chown) {
          await fchownAsync(fd, uid, gid).catch((e: NodeJS.ErrnoException) => {
            if (e.code !== "EINVAL" && e.code !== "EPERM") throw e;
            this.noteUnmapped(uid, gid);
          });
        }
        if (calls.chmod) await fchmodAsync(fd, (header.mode ?? 0o644) & 0o7777);
        const t = header.mtime ?? new Date(0);
        await futimesAsync(fd, t, t);
      } finally {
        await closeAsync(fd);
      }
    })().then(
      () => {},
      (error) => void (this.failed ??= { error }),
    ).finally(() => {
      this.pending.delete(rel);
      this.pendingBytes -= size;
    });
    this.pending.set(rel, work);
    this.pendingBytes += size;
  }

  async entry(header: Header, body: EntryBody, rawPax?: Map<string, Buffer>): Promise<void> {
    const entryName = header.name;
    const rel = cleanEntryName(entryName);
    const base = rel.slice(rel.lastIndexOf("/") + 1);

    this.throwIfFailed();
    if (base.startsWith(WH_PREFIX)) {
      body.resume();
      await this.whiteout(rel, base, entryName);
      return;
    }
    if (rel === "") {
      // The "./" entry: the root's own metadata.
      body.resume();
      if (header.type === "directory") this.dirDone("", header, rawPax);
      return;
    }
    await this.ensureParents(rel, entryName);
    await this.settled(rel);
    const existing = this.existing(rel);
    const path = this.abs(rel);
    this.made?.add(rel);

    switch (header.type) {
      case "directory": {
        body.resume();
        if (existing && !existing.isDirectory()) await this.remove(rel, existing);
        if (!existing || !existing.isDirectory()) mkdirSync(path, 0o700);
        this.safeDirs.add(rel);
        this.chown(rel, header.uid ?? 0, header.gid ?? 0);
        this.dirDone(rel, header, rawPax);
        break;
      }
      case "file":
      case "contiguous-file": {
        await this.remove(rel, existing);
        if ((header.size ?? 0) > TINY_FILE && (header.size ?? 0) <= SMALL_FILE) {
          // Kept as the chunks they came in (slices of the inflated tar), written with one writev.
          const chunks: Buffer[] = [];
          for await (const chunk of body) chunks.push(chunk);
          await this.createFile(rel, header, chunks);
          break;
        }
        const calls = this.fileCalls(header);
        const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, calls.createMode);
        try {
          for await (const chunk of body) {
            let off = 0;
            while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
          }
          if (calls.chown) this.chown(rel, header.uid ?? 0, header.gid ?? 0, fd);
          if (calls.chmod) fchmodSync(fd, (header.mode ?? 0o644) & 0o7777);
          const t = header.mtime ?? new Date(0);
          futimesSync(fd, t, t);
        } finally {
          closeSync(fd);
        }
        break;
      }
      case "symlink": {
        body.resume();
        await this.remove(rel, existing);
        symlinkSync(header.linkname ?? "", path);
        this.chown(rel, header.uid ?? 0, header.gid ?? 0);
        const t = header.mtime ?? new Date(0);
        lutimesSync(path, t, t);
        break;
      }
      case "link": {
        body.resume();
        const target = cleanEntryName(header.linkname ?? "", entryName);
        if (target === "") throw new HostileLayerError(entryName, "hardlink to the root");
        await this.ensureParents(target, entryName);
        await this.settled(target);
        const tst = this.lstatOrNull(target);
        if (!tst) throw new HostileLayerError(entryName, `hardlink to "${target}", which is not in the layer or below it`);
        if (tst.isDirectory()) throw new HostileLayerError(entryName, `hardlink to directory "${target}"`);
        if (target === rel) break;
        await this.remove(rel, existing);
        linkSync(this.abs(target), path);
        break;
      }
      case "fifo": {
        body.resume();
        await this.remove(rel, existing);
        const r = spawnSync("mkfifo", ["-m", ((header.mode ?? 0o644) & 0o7777).toString(8), path]);
        if (r.status !== 0) {
          this.opts.onNote?.(`could not create fifo ${rel}: ${r.stderr?.toString().trim() || r.error?.message}`);
          break;
        }
        this.chown(rel, header.uid ?? 0, header.gid ?? 0);
        const t = header.mtime ?? new Date(0);
        utimesSync(path, t, t);
        break;
      }
      case "character-device":
      case "block-device": {
        body.resume();
        // Device nodes cannot be made in a user namespace; containers get /dev from their runtime.
        this.skippedDevices.push(rel);
        return;
      }
      default: {
        body.resume();
        this.opts.onNote?.(`skipped ${rel}: unsupported tar entry type ${header.type}`);
        return;
      }
    }
    this.written.add(rel);
    this.collectXattrs(rel, rawPax);
  }

  private dirDone(rel: string, header: Header, rawPax?: Map<string, Buffer>): void {
    if (rel === "") this.chown("", header.uid ?? 0, header.gid ?? 0);
    // Mode and times are set at the end: creating children would change the mtime, and a 0555 dir
    // must stay writable until its contents are in.
    this.dirMeta.set(rel, { abs: this.abs(rel), mode: (header.mode ?? 0o755) & 0o7777, mtime: header.mtime ?? new Date(0) });
    this.written.add(rel);
    this.collectXattrs(rel, rawPax);
  }

  private async whiteout(rel: string, base: string, entry: string): Promise<void> {
    const parent = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
    await this.ensureParents(rel, entry);
    // Rare; whatever it deletes must be complete first.
    await this.drain();
    if (base === WH_OPAQUE) {
      if (this.opts.mode === "overlay") {
        this.xattrs.push({ rel: parent, name: OVERLAY_OPAQUE_XATTR, value: Buffer.from("y") });
        return;
      }
      // Opaque: what lower layers put in this dir goes; what this layer put there stays.
      for (const name of readdirSync(this.abs(parent))) {
        const child = parent ? parent + "/" + name : name;
        if (!this.written.has(child)) await this.remove(child);
      }
      return;
    }
    const name = base.slice(WH_PREFIX.length);
    if (name === "" || name === "." || name === "..") throw new HostileLayerError(entry, "malformed whiteout");
    const target = parent ? parent + "/" + name : name;
    const existing = this.existing(target);
    this.made?.add(target);
    if (this.opts.mode === "merge") {
      await this.remove(target, existing);
      return;
    }
    await this.remove(target, existing);
    linkSync(this.template(), this.abs(target));
  }

  /** One 0/0 char device per layer (mknod needs a process); every whiteout is a hardlink to it, as overlayfs itself does. */
  private template(): string {
    if (this.whiteoutTemplate) return this.whiteoutTemplate;
    const file = join(dirname(this.root), `.whiteout-${process.pid}-${Date.now()}`);
    makeOverlayWhiteout(file);
    this.whiteoutTemplate = file;
    return file;
  }

  /** xattrs from the entry's pax records (exact bytes, from PaxTap): SCHILY.xattr.* raw, LIBARCHIVE.xattr.* base64. */
  private collectXattrs(rel: string, pax: Map<string, Buffer> | undefined): void {
    if (!pax) return;
    for (const [key, value] of pax) {
      let name: string;
      let bytes: Buffer;
      if (key.startsWith("SCHILY.xattr.")) {
        name = key.slice("SCHILY.xattr.".length);
        bytes = value;
      } else if (key.startsWith("LIBARCHIVE.xattr.")) {
        name = decodeURIComponent(key.slice("LIBARCHIVE.xattr.".length));
        bytes = Buffer.from(value.toString("latin1"), "base64");
      } else continue;
      // A layer must not steer overlayfs (redirects, opaque markers of its own choosing).
      if (isOverlayPrivate(name)) continue;
      this.xattrs.push({ rel, name, value: bytes });
    }
  }

  async finish(): Promise<void> {
    await this.drain();
    if (this.whiteoutTemplate) rmSync(this.whiteoutTemplate, { force: true });
    if (this.xattrs.length) {
      // A later entry may have replaced a parent with a symlink: only set xattrs on paths whose
      // parents still resolve inside the target.
      const rootReal = realpathSync(this.root);
      const safe = this.xattrs.filter(({ rel }) => {
        const parent = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
        try {
          return realpathSync(this.abs(parent)) === (parent ? join(rootReal, parent) : rootReal);
        } catch {
          return false;
        }
      });
      const refused = await writeXattrs(this.root, safe);
      const opaqueFailed = refused.some((m) => m.includes("user.overlay.opaque"));
      if (opaqueFailed) throw new UserError(`cannot mark opaque directories in ${this.root}: ${refused.join("; ")}`);
      for (const m of refused) this.opts.onNote?.(`xattr not kept: ${m}`);
    }
    // Deepest first, so setting a dir's mtime is not undone by a child's.
    const dirs = [...this.dirMeta.entries()].sort((a, b) => b[0].length - a[0].length);
    for (const [, m] of dirs) {
      chmodSync(m.abs, m.mode);
      utimesSync(m.abs, m.mtime, m.mtime);
    }
    if (this.skippedDevices.length) {
      const shown = this.skippedDevices.slice(0, 5).join(", ");
      const more = this.skippedDevices.length > 5 ? ` and ${this.skippedDevices.length - 5} more` : "";
      this.opts.onNote?.(`skipped ${this.skippedDevices.length} device node(s) (${shown}${more}): they cannot be created without privileges; the container runtime provides /dev`);
    }
  }
}

/** Reads the first bytes of a stream and puts them back, to tell a compressed stream from a plain tar. */
async function peekHead(src: Readable): Promise<Buffer> {
  for (;;) {
    const chunk = src.read() as Buffer | null;
    if (chunk !== null) {
      src.unshift(chunk);
      return chunk;
    }
    if (src.readableEnded) return Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        src.off("readable", done);
        src.off("end", done);
        src.off("error", fail);
        resolve();
      };
      const fail = (e: Error) => {
        src.off("readable", done);
        src.off("end", done);
        reject(e);
      };
      src.once("readable", done);
      src.once("end", done);
      src.once("error", fail);
    });
    if (src.readableEnded && src.readableLength === 0) return Buffer.alloc(0);
  }
}

/**
 * Applies a layer tar to `dir` and returns its diff-id (the sha256 of the uncompressed tar). On error
 * `dir` is left partly written: callers extract into a temp dir and rename it into place on success.
 */
export async function applyLayer(source: Readable, dir: string, opts: ApplyOptions & { onTar?: undefined }): Promise<{ diffId: Digest }>;
export async function applyLayer(source: Readable, dir: string, opts: ApplyOptions): Promise<{ diffId: Digest | undefined }>;
export async function applyLayer(source: Readable, dir: string, opts: ApplyOptions): Promise<{ diffId: Digest | undefined }> {
  const tap = new PaxTap(opts.onTar);
  const compression = opts.compression ?? sniffCompression(await peekHead(source));
  const unpack = decompressor(compression, opts.what ?? "the layer");
  // Loaded here, not at the top: tar-stream and its streamx stack take ~15 ms to load, which a
  // build that extracts nothing (its bases already in the store) would pay at every start.
  const { extract: tarExtract } = (await import("tar-stream")).default;
  const extract = tarExtract();
  const applier = new Applier(dir, opts);
  const feeding = unpack ? pipeline(source, unpack, tap, extract) : pipeline(source, tap, extract);
  let feedError: unknown;
  const fed = feeding.catch((e) => {
    feedError = e;
  });
  try {
    for await (const entry of extract) {
      // The tap has seen this entry's header before tar-stream handed it over.
      const rawPax = entry.header.pax ? tap.paxQueue.shift() : undefined;
      await applier.entry(entry.header, entry as unknown as EntryBody, rawPax);
    }
  } catch (e) {
    source.destroy();
    extract.destroy();
    await fed;
    // Nothing may still be writing into `dir` once this settles: the caller removes it.
    await applier.drain().catch(() => {});
    // The loop sees tar-stream's error; the feed may hold the real cause (zlib's, or the source's).
    throw corruptArchive(feedError && !(e instanceof UserError) ? feedError : e, opts.what ?? "the layer", compression);
  }
  await fed;
  if (feedError) throw corruptArchive(feedError, opts.what ?? "the layer", compression);
  await applier.finish();
  return { diffId: opts.onTar ? undefined : tap.digest() };
}
