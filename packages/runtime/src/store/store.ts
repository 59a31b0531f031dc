// The content-addressed store shared by all projects of a user (DESIGN §3):
//
//   blobs/sha256/<hex>     blobs by digest (uncompressed layer tars, gzip layers, configs, manifests)
//   layers/<hex>/          layers extracted by diff-id, in overlay-lower format (read-only lower dirs)
//   results/<hex>.json     stage key → StageResult
//   gzip/<hex>             diff-id → the digest of its gzip blob (compressLayer's cache)
//   caches/<id>/           persistent `caches` dirs of `run` steps
//   stat-cache/<hex>.json  core's per-project stat cache (file → content digest)
//   tmp/                   temp files and work dirs; same filesystem, so finished entries rename in
//   locks/                 see lock.ts
//
// Every entry appears by rename of a complete, verified temp file or dir; nothing in tmp/ is ever
// trusted, and gc clears it.
import { createHash } from "node:crypto";
import {
  createReadStream,
  existsSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from "node:fs";
import { open, readFile, rename, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { UserError } from "@mstage/core";
import { digestHex, digestOf, isDigest, parseDigest, sha256Digest, type Digest } from "../oci/digest.ts";
import { applyLayer } from "../layer/apply.ts";
import { errno, fsyncDir, tempName, writeFileAtomic } from "./files.ts";
import { acquireLock, type LockMode, type LockOptions, type StoreLock } from "./lock.ts";
import { collectGarbage, listResults, type GcOptions, type GcReport, type ResultInfo } from "./gc.ts";
import type { StageResult } from "./result.ts";

const FORMAT = "mstage-store 1\n";
/** Bytes written between background datasyncs of a large blob. */
const SYNC_EVERY = 32 << 20;

/** Bytes that did not match the digest they were promised under. */
export class DigestMismatchError extends UserError {
  override name = "DigestMismatchError";
  constructor(
    readonly expected: Digest,
    readonly actual: Digest,
    what: string,
  ) {
    super(`${what}: expected ${expected}, got ${actual}; the data is corrupt or was tampered with`);
  }
}

export interface WriteBlobOptions {
  /** Known size: an existing blob of another size is rewritten, and a stream of another size rejected. */
  size?: number;
  /** Names the data's origin in errors, e.g. "layer sha256:… from docker.io/library/debian". */
  what?: string;
}

export class Store {
  private readonly extracting = new Map<string, Promise<string>>();

  private constructor(readonly root: string) {}

  /** Opens (and on first use creates) the store at `dir`. */
  static async open(dir: string): Promise<Store> {
    for (const sub of ["blobs/sha256", "layers", "results", "gzip", "caches", "stat-cache", "tmp", "locks"]) {
      mkdirSync(join(dir, sub), { recursive: true });
    }
    const marker = join(dir, "FORMAT");
    let format: string | null = null;
    try {
      format = readFileSync(marker, "utf8");
    } catch (e) {
      if (errno(e) !== "ENOENT") throw e;
    }
    if (format === null) await writeFileAtomic(marker, FORMAT, join(dir, "tmp"));
    else if (format !== FORMAT) {
      throw new UserError(`${dir} is not an mstage store of this version (FORMAT says ${JSON.stringify(format.trim())}); use another --store or remove it`);
    }
    return new Store(dir);
  }

  /** A fresh, empty directory on the store's filesystem (for work dirs and temp files); the caller removes it. */
  tmpDir(hint = ""): string {
    const dir = tempName(join(this.root, "tmp"), hint);
    mkdirSync(dir, { mode: 0o755 });
    return dir;
  }

  /** A fresh temp path (not created) on the store's filesystem. */
  tmpPath(hint = ""): string {
    return tempName(join(this.root, "tmp"), hint);
  }

  // ---- blobs ----

  blobPath(d: Digest): string {
    return join(this.root, "blobs", "sha256", digestHex(d));
  }

  hasBlob(d: Digest): boolean {
    return existsSync(this.blobPath(d));
  }

  /** Size of a stored blob, or null. */
  blobSize(d: Digest): number | null {
    try {
      return statSync(this.blobPath(d)).size;
    } catch {
      return null;
    }
  }

  /**
   * Stores bytes as a blob: streamed to a temp file while hashed, fsynced, renamed into place. With
   * `expected`, the bytes must hash to it (else DigestMismatchError and nothing is stored), and an
   * existing blob of that digest (and size, if given) is kept without reading `source`.
   */
  async writeBlob(source: Readable | Uint8Array, expected?: Digest, opts: WriteBlobOptions = {}): Promise<{ digest: Digest; size: number }> {
    if (expected) {
      const have = this.blobSize(expected);
      if (have !== null && (opts.size === undefined || opts.size === have)) {
        if (source instanceof Readable) source.destroy();
        return { digest: expected, size: have };
      }
    }
    const tmp = this.tmpPath("blob");
    const hash = createHash("sha256");
    let size = 0;
    const fh = await open(tmp, "wx", 0o644);
    // One write in flight while the next chunk is produced and hashed, and a datasync every
    // SYNC_EVERY bytes in the background: producing, hashing and writeback to disk overlap, instead
    // of one long fsync of a whole layer at the end.
    let writing: Promise<void> | null = null;
    let syncing: Promise<void> | null = null;
    let syncError: unknown;
    try {
      if (source instanceof Uint8Array) {
        hash.update(source);
        size = source.byteLength;
        await writeAll(fh, Buffer.from(source.buffer, source.byteOffset, source.byteLength));
      } else {
        let unsynced = 0;
        for await (const chunk of source as AsyncIterable<Buffer>) {
          hash.update(chunk);
          size += chunk.byteLength;
          if (writing) await writing;
          writing = writeAll(fh, chunk);
          // Handled when awaited; until then a failure must not count as an unhandled rejection.
          writing.catch(() => {});
          unsynced += chunk.byteLength;
          if (unsynced >= SYNC_EVERY && !syncing) {
            unsynced = 0;
            syncing = writing
              .then(() => fh.datasync())
              .catch((e) => void (syncError ??= e))
              .finally(() => void (syncing = null));
          }
        }
        if (writing) await writing;
        if (syncing) await syncing;
        if (syncError) throw syncError;
      }
      await fh.sync();
    } catch (e) {
      await Promise.allSettled([writing, syncing]);
      await fh.close();
      await rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    const digest = digestOf(hash);
    const what = opts.what ?? `blob ${expected ?? digest}`;
    if (expected && digest !== expected) {
      await rm(tmp, { force: true });
      throw new DigestMismatchError(expected, digest, what);
    }
    if (opts.size !== undefined && size !== opts.size) {
      await rm(tmp, { force: true });
      throw new UserError(`${what}: expected ${opts.size} bytes, got ${size}`);
    }
    // Another process may have stored the same bytes meanwhile: rename over it is harmless (same content).
    await rename(tmp, this.blobPath(digest));
    fsyncDir(join(this.root, "blobs", "sha256"));
    return { digest, size };
  }

  /** Reads a blob, checking its digest as it streams (the stream errors at its end on a mismatch). */
  openBlob(d: Digest, opts: { verify?: boolean } = {}): Readable {
    const file = this.blobPath(d);
    const raw = openFileStream(file);
    if (opts.verify === false) return raw;
    const hash = createHash("sha256");
    const check = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        const got = digestOf(hash);
        cb(got === d ? null : new DigestMismatchError(d, got, `stored blob ${file}`));
      },
    });
    raw.on("error", (e) => check.destroy(e));
    return raw.pipe(check);
  }

  /** A whole small blob (manifest, config), verified. */
  async readBlob(d: Digest): Promise<Buffer> {
    const data = await readFile(this.blobPath(d));
    const got = sha256Digest(data);
    if (got !== d) throw new DigestMismatchError(d, got, `stored blob ${this.blobPath(d)}`);
    return data;
  }

  // ---- extracted layers ----

  layerDir(diffId: Digest): string {
    return join(this.root, "layers", digestHex(diffId));
  }

  hasLayerDir(diffId: Digest): boolean {
    return existsSync(this.layerDir(diffId));
  }

  /**
   * The layer extracted in overlay-lower format, extracting it once if needed from `open()` (plain
   * or gzip tar), or by default from the store: the uncompressed blob, else its recorded gzip blob.
   * The tar must hash to `diffId` (so the default source is read without a second digest check);
   * extraction happens in tmp/ and appears by one rename, so a concurrent or interrupted extraction
   * never leaves a half layer under layers/.
   */
  async ensureLayerExtracted(diffId: Digest, open?: () => Readable, opts: { onNote?: (msg: string) => void } = {}): Promise<string> {
    const dir = this.layerDir(diffId);
    if (existsSync(dir)) return dir;
    const pending = this.extracting.get(diffId);
    if (pending) return pending;
    const work = (async () => {
      const tmp = this.tmpDir("layer");
      try {
        const { diffId: got } = await applyLayer(open ? open() : this.openLayerTar(diffId), tmp, { mode: "overlay", onNote: opts.onNote });
        if (got !== diffId) throw new DigestMismatchError(diffId, got, `layer ${diffId}`);
        try {
          renameSync(tmp, dir);
        } catch (e) {
          // Another process finished the same layer first; its copy is as good as ours.
          if (!["ENOTEMPTY", "EEXIST"].includes(errno(e) ?? "")) throw e;
          await rm(tmp, { recursive: true, force: true });
        }
        fsyncDir(join(this.root, "layers"));
        return dir;
      } catch (e) {
        await rm(tmp, { recursive: true, force: true });
        throw e;
      }
    })();
    this.extracting.set(diffId, work);
    try {
      return await work;
    } finally {
      this.extracting.delete(diffId);
    }
  }

  /**
   * Makes `dir` (on the store's filesystem, e.g. a work dir from tmpDir()) the extracted form of
   * layer `diffId`, instead of extracting the layer's tar again: for an overlay upper dir or a rootfs
   * that was just committed as that layer. Its mtimes are clamped and truncated exactly as the tar
   * has them, so a later stage sees the same files whether the layer was adopted or extracted.
   * `dir` is moved (or removed, if the layer is already extracted); returns the layer dir.
   */
  adoptLayerDir(diffId: Digest, dir: string, opts: { sourceDateEpoch: number }): string {
    const target = this.layerDir(diffId);
    if (existsSync(target)) {
      rmSync(dir, { recursive: true, force: true });
      return target;
    }
    clampTimes(dir, opts.sourceDateEpoch);
    try {
      renameSync(dir, target);
    } catch (e) {
      if (!["ENOTEMPTY", "EEXIST"].includes(errno(e) ?? "")) throw e;
      rmSync(dir, { recursive: true, force: true });
    }
    fsyncDir(join(this.root, "layers"));
    return target;
  }

  /** The layer's tar as stored (plain, else gzip), unverified: for readers that check the diff-id themselves. */
  openLayerTar(diffId: Digest): Readable {
    if (this.hasBlob(diffId)) return this.openBlob(diffId, { verify: false });
    const gz = this.compressedOf(diffId);
    if (gz && this.hasBlob(gz.digest)) return this.openBlob(gz.digest, { verify: false });
    throw new UserError(`layer ${diffId} is not in the store ${this.root} (neither its tar nor its gzip blob); rebuild with --no-cache`);
  }

  /** Whether the layer can be used: extracted, or its tar (plain or gzip) is stored. */
  hasLayer(diffId: Digest): boolean {
    if (this.hasLayerDir(diffId) || this.hasBlob(diffId)) return true;
    const gz = this.compressedOf(diffId);
    return gz !== null && this.hasBlob(gz.digest);
  }

  // ---- diff-id → gzip blob ----

  /** Remembers that blob `gz` is the gzip of layer `diffId` (from compressLayer, or a pulled layer). */
  async recordCompressed(diffId: Digest, gz: { digest: Digest; size: number }): Promise<void> {
    await writeFileAtomic(join(this.root, "gzip", digestHex(diffId)), `${gz.digest} ${gz.size}\n`, join(this.root, "tmp"));
  }

  compressedOf(diffId: Digest): { digest: Digest; size: number } | null {
    try {
      const [d, size] = readFileSync(join(this.root, "gzip", digestHex(diffId)), "utf8").trim().split(" ");
      if (!isDigest(d)) return null;
      return { digest: d, size: Number(size) };
    } catch {
      return null;
    }
  }

  // ---- results ----

  /** results/<hex of key>.json; core's plan reads this path to say "not in store". */
  resultPath(key: string): string {
    return join(this.root, "results", `${resultHex(key)}.json`);
  }

  /**
   * The result stored for a stage key, or null when there is none or any of its layers is gone.
   * Reading it marks it used (its file's mtime), which `gc --max-size` uses to drop the oldest first.
   */
  async getResult(key: string): Promise<StageResult | null> {
    const file = this.resultPath(key);
    let record: StageResult;
    try {
      record = JSON.parse(await readFile(file, "utf8")) as StageResult;
    } catch (e) {
      if (errno(e) === "ENOENT" || e instanceof SyntaxError) return null;
      throw e;
    }
    if (record.key !== key || !Array.isArray(record.layers)) return null;
    for (const l of record.layers) {
      if (!isDigest(l.diffId) || !this.hasLayer(l.diffId)) return null;
    }
    try {
      const now = new Date();
      utimesSync(file, now, now);
    } catch {
      // Marking use is best-effort (a read-only store still serves results).
    }
    return record;
  }

  async hasResult(key: string): Promise<boolean> {
    return (await this.getResult(key)) !== null;
  }

  async putResult(key: string, record: StageResult): Promise<void> {
    if (record.key !== key) throw new Error(`result for ${key} carries key ${record.key}`);
    for (const l of record.layers) parseDigest(l.diffId);
    await writeFileAtomic(this.resultPath(key), JSON.stringify(record, null, 2) + "\n", join(this.root, "tmp"));
  }

  // ---- caches, stat cache ----

  /** The persistent directory of a `caches` id (created on first use). */
  cacheDir(id: string): string {
    const safe = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(id) ? id : "h-" + sha256Digest(id).slice(7, 39);
    const dir = join(this.root, "caches", safe);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Where core keeps the stat cache of the project at `projectDir` (one file per project). */
  statCachePath(projectDir: string): string {
    return join(this.root, "stat-cache", `${sha256Digest(projectDir).slice(7, 39)}.json`);
  }

  // ---- locking ----

  /**
   * Cross-process lock: builders hold it "shared" for a whole build, gc "exclusive". Writes need no
   * lock (they are atomic renames); the lock only keeps gc from deleting what a build is using.
   */
  lock(mode: LockMode = "shared", opts?: LockOptions): Promise<StoreLock> {
    return acquireLock(join(this.root, "locks"), mode, opts);
  }

  // ---- ls, gc ----

  /** Every stored result, most recently used first. */
  list(): ResultInfo[] {
    return listResults(this);
  }

  /**
   * Removes what no remaining result references (and, with `maxSize`, the least recently used
   * results until the store fits). Takes the exclusive lock unless `dryRun`; must run inside the
   * user namespace, since extracted layers hold files of mapped ids.
   */
  async gc(opts: GcOptions & LockOptions = {}): Promise<GcReport> {
    if (opts.dryRun) return collectGarbage(this, opts);
    const lock = await this.lock("exclusive", opts);
    try {
      return collectGarbage(this, opts);
    } finally {
      lock.release();
    }
  }
}

/** Sets every mtime below `dir` to what commit writes into the tar: whole seconds, at most `epoch`. */
function clampTimes(dir: string, epoch: number): void {
  const visit = (path: string) => {
    const st = lstatSync(path);
    if (st.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
    const t = Math.min(Math.floor(st.mtimeMs / 1000), epoch);
    if (st.mtimeMs !== t * 1000) lutimesSync(path, t, t);
  };
  for (const name of readdirSync(dir)) visit(join(dir, name));
}

function resultHex(key: string): string {
  if (/^sha256:[a-f0-9]{64}$/.test(key)) return key.slice(7);
  if (/^[a-f0-9]{64}$/.test(key)) return key;
  throw new Error(`invalid stage key ${JSON.stringify(key)}: want sha256:<64 hex digits>`);
}

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
}

function openFileStream(file: string): Readable {
  return createReadStream(file, { highWaterMark: 1 << 20 });
}
