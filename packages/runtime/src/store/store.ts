// The content-addressed store shared by all projects of a user (DESIGN §3). Its layout is core's
// store-layout.ts; each concern has its own file (blobs.ts, layers.ts, results.ts, gc.ts,
// store-lock.ts) and this class puts them behind one handle. Layer extraction is layer/extract.ts.
//
// Every entry appears by rename of a complete, verified temp file or dir; nothing in tmp/ is ever
// trusted, and gc clears it.
import { mkdirSync, readFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { join } from "node:path";
import { STORE_DIRS, STORE_FORMAT, StoreLayout, UserError, layerInStore, tempName, type LayerCompression } from "@mstage/core";
import type { Digest } from "../oci/digest.ts";
import { errno, syncFilesystem, writeFileAtomic } from "./atomic-files.ts";
import * as blobs from "./blobs.ts";
import { collectGarbage, listResults, type GcOptions, type GcReport, type ResultInfo } from "./gc.ts";
import * as layers from "./layers.ts";
import * as results from "./results.ts";
import type { StageResult } from "./results.ts";
import { acquireLock, type LockMode, type LockOptions, type StoreLock } from "./store-lock.ts";
import { verifyStore, type LayerChecker, type VerifyReport } from "./verify.ts";

export type { WriteBlobOptions } from "./blobs.ts";

/** The record being written per store, layer and format (Store.recordCompressed), in this process. */
const recording = new Map<string, Promise<CompressedRecord>>();

/** A layer's compressed blob, as its record in the store says. */
export interface CompressedRecord {
  digest: Digest;
  size: number;
  /** Made from the layer's extracted dir (its tar written again), not from a stored tar. */
  fromLayerDir?: boolean;
}

export class Store {
  readonly layout: StoreLayout;

  private constructor(readonly root: string) {
    this.layout = new StoreLayout(root);
  }

  /** Opens (and on first use creates) the store at `dir`. */
  static async open(dir: string): Promise<Store> {
    try {
      for (const sub of STORE_DIRS) mkdirSync(join(dir, sub), { recursive: true });
    } catch (e) {
      const code = errno(e);
      if (code === "EACCES" || code === "EPERM" || code === "EROFS" || code === "ENOTDIR" || code === "ENOSPC" || code === "EEXIST") {
        throw new UserError(`cannot use ${dir} as the store: ${(e as Error).message}; pass --store (or set MSTAGE_STORE to) a directory you can write`, { cause: e });
      }
      throw e;
    }
    const layout = new StoreLayout(dir);
    let format: string | null = null;
    try {
      format = readFileSync(layout.format, "utf8");
    } catch (e) {
      if (errno(e) !== "ENOENT") throw e;
    }
    if (format === null) await writeFileAtomic(layout.format, STORE_FORMAT, layout.tmpDir);
    else if (format !== STORE_FORMAT) {
      throw new UserError(`${dir} is not an mstage store of this version (FORMAT says ${JSON.stringify(format.trim())}); use another --store or remove it`);
    }
    return new Store(dir);
  }

  /** A fresh, empty directory on the store's filesystem (for work dirs and temp files); the caller removes it. */
  tmpDir(hint = ""): string {
    const dir = this.tmpPath(hint);
    mkdirSync(dir, { mode: 0o755 });
    return dir;
  }

  /** A fresh temp path (not created) on the store's filesystem. */
  tmpPath(hint = ""): string {
    return tempName(this.layout.tmpDir, hint);
  }

  // ---- blobs (blobs.ts) ----

  blobPath(d: Digest): string {
    return this.layout.blob(d);
  }

  hasBlob(d: Digest): boolean {
    return blobs.hasBlob(this.layout, d);
  }

  /** Size of a stored blob, or null. */
  blobSize(d: Digest): number | null {
    return blobs.blobSize(this.layout, d);
  }

  /** See blobs.writeBlob. */
  async writeBlob(source: Readable | Uint8Array, expected?: Digest, opts: blobs.WriteBlobOptions = {}): Promise<{ digest: Digest; size: number }> {
    const present = expected !== undefined && this.hasBlob(expected);
    const written = await blobs.writeBlob(this.layout, source, expected, opts);
    if (!present) this.writtenBlobs.add(written.digest);
    return written;
  }

  /** Blobs this Store object wrote, hashing the bytes as it wrote them (blobs.writeBlob renames its temp file over any other copy). */
  private readonly writtenBlobs = new Set<Digest>();


  /**
   * True for a blob written through this Store object (one `up`): it was hashed as it was written,
   * moments ago, so an output copies it without reading it through a hash again.
   */
  writtenHere(d: Digest): boolean {
    return this.writtenBlobs.has(d);
  }

  /** See blobs.placeBlobFile: a temp file already verified as `digest` becomes that blob. */
  placeBlobFile(digest: Digest, file: string): Promise<void> {
    return blobs.placeBlobFile(this.layout, digest, file);
  }

  /**
   * Makes everything written to the store's filesystem so far durable, with one syncfs (`sync -f`)
   * instead of an fsync per file: for a pull, whose blobs and extracted files are written unsynced.
   */
  syncFilesystem(): Promise<void> {
    return syncFilesystem(this.root);
  }

  /** Reads a blob, checking its digest as it streams (the stream errors at its end on a mismatch). */
  openBlob(d: Digest, opts: { verify?: boolean } = {}): Readable {
    return blobs.openBlob(this.layout, d, opts);
  }

  /** A whole small blob (manifest, config), verified. */
  readBlob(d: Digest): Promise<Buffer> {
    return blobs.readBlob(this.layout, d);
  }

  // ---- extracted layers (layers.ts; extraction in layer/extract.ts) ----

  layerDir(diffId: Digest): string {
    return this.layout.layer(diffId);
  }

  hasLayerDir(diffId: Digest): boolean {
    return layers.hasLayerDir(this.layout, diffId);
  }

  /** Moves a finished extraction `dir` into place as layer `diffId` (or drops it if one is there); see layers.placeLayerDir. */
  placeLayerDir(diffId: Digest, dir: string, opts: { sync?: boolean; pending?: boolean } = {}): string {
    return layers.placeLayerDir(this.layout, diffId, dir, opts);
  }

  /** A layer dir placed `pending` has been made durable. */
  layerDirDurable(diffId: Digest): void {
    layers.layerDirDurable(this.layout, diffId);
  }

  /** See layers.adoptLayerDir. */
  adoptLayerDir(diffId: Digest, dir: string, opts: { sourceDateEpoch: number }): string {
    return layers.adoptLayerDir(this.layout, diffId, dir, opts);
  }

  /** The blob holding layer `diffId` (its tar, else its gzip or zstd blob), or null. */
  layerBlob(diffId: Digest): Digest | null {
    return layers.layerBlob(this.layout, diffId);
  }

  /** The layer's tar as stored (plain, else gzip, else zstd), unverified: for readers that check the diff-id themselves. */
  openLayerTar(diffId: Digest): Readable {
    return layers.openLayerTar(this.layout, diffId);
  }

  /** Whether the layer can be used: extracted, or its tar (plain, gzip or zstd) is stored. */
  hasLayer(diffId: Digest): boolean {
    return layerInStore(this.layout, diffId);
  }

  /**
   * Remembers that blob `blob` is the `format` (default gzip) of layer `diffId` (a pulled or
   * imported compressed layer), and resolves to the record then in force. With `ifAbsent` (a blob
   * compressLayer made) a record whose blob is stored is kept instead. The records of one layer and
   * format are written one after another, so which blob an export gets does not depend on timing:
   * an imported gzip file of the tar wins over a compression ahead (layer/compress.ts), whichever
   * of the two finishes first.
   */
  recordCompressed(diffId: Digest, blob: CompressedRecord, format: LayerCompression = "gzip", o: { ifAbsent?: boolean } = {}): Promise<CompressedRecord> {
    const key = `${this.root}\0${format}:${diffId}`;
    const write = async (): Promise<CompressedRecord> => {
      const current = o.ifAbsent ? this.compressedOf(diffId, format) : null;
      if (current && this.hasBlob(current.digest)) return current;
      await layers.recordCompressed(this.layout, diffId, blob, format);
      return blob;
    };
    const done = (recording.get(key) ?? Promise.resolve()).then(write, write);
    recording.set(key, done);
    const forget = () => {
      if (recording.get(key) === done) recording.delete(key);
    };
    done.then(forget, forget);
    return done;
  }

  compressedOf(diffId: Digest, format: LayerCompression = "gzip"): CompressedRecord | null {
    return layers.compressedOf(this.layout, diffId, format);
  }

  // ---- results (results.ts) ----

  /** results/<hex of key>.json. */
  resultPath(key: string): string {
    return this.layout.result(key);
  }

  /** See results.getResult: null when missing or any layer is gone; marks the result used. */
  async getResult(key: string): Promise<StageResult | null> {
    return results.getResult(this.layout, key);
  }

  async hasResult(key: string): Promise<boolean> {
    return (await this.getResult(key)) !== null;
  }

  putResult(key: string, record: StageResult): Promise<void> {
    return results.putResult(this.layout, key, record);
  }

  // ---- caches, stat cache ----

  /** The persistent directory of a `caches` id (created on first use). */
  cacheDir(id: string): string {
    const dir = this.layout.cache(id);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  // ---- locking (store-lock.ts) ----

  /**
   * Cross-process lock: builders hold it "shared" for a whole build, gc "exclusive". Writes need no
   * lock (they are atomic renames); the lock only keeps gc from deleting what a build is using.
   */
  lock(mode: LockMode = "shared", opts?: LockOptions): Promise<StoreLock> {
    return acquireLock(this.layout.locksDir, mode, opts);
  }

  // ---- ls, gc (gc.ts) ----

  /** Every stored result, most recently used first. */
  list(): ResultInfo[] {
    return listResults(this.layout);
  }

  /**
   * Removes what no remaining result references (and, with `maxSize`, the least recently used
   * results until the store fits). Takes the exclusive lock unless `dryRun`; must run inside the
   * user namespace, since extracted layers hold files of mapped ids.
   */
  /**
   * Hashes every blob and checks every extracted layer (with `checkLayer`, layer/verify.ts), removing
   * what is corrupt and the results that need a removed blob. Takes the exclusive lock.
   */
  async verify(checkLayer: LayerChecker, opts: LockOptions = {}): Promise<VerifyReport> {
    const lock = await this.lock("exclusive", opts);
    try {
      return await verifyStore(this.layout, checkLayer);
    } finally {
      lock.release();
    }
  }

  async gc(opts: GcOptions & LockOptions = {}): Promise<GcReport> {
    if (opts.dryRun) return collectGarbage(this.layout, opts);
    const lock = await this.lock("exclusive", opts);
    try {
      return collectGarbage(this.layout, opts);
    } finally {
      lock.release();
    }
  }
}
