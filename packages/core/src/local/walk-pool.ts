// Threads that list directories for a large local() walk: each reads one directory's names, sorts
// them and lstats every entry, so the system calls of a 200 000-file tree run beside the thread that
// matches, ignores and hashes (git's status does its lstat pass on threads the same way). A listing
// comes back as one string and one Float64Array, not an object per entry. The worker's code is a
// string evaluated in the thread, so it runs from the TypeScript sources and the bundle alike.
//
// Where the build compiled packages/core/native/listdir.c beside the bundle, the threads and the
// walk list with it (one fstatat per entry, relative to the directory, instead of lstatSync's Stats
// and its four Dates): a warm plan of 200 000 files took 0.29 s instead of 0.39 s (bench/compare.sh
// files-200k). It gives the same listing or none, and then listDirectory answers.
import * as fs from "node:fs";
import { availableParallelism } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

/** One directory: its sorted names and, per name, NUMBERS numbers (see Listing.stats). */
export interface Listing {
  names: string[];
  /** Per name: st_mode (-1: gone before its lstat), size, mtimeMs, ctimeMs, ino. */
  stats: Float64Array;
  /** The targets of the symbolic links among the names, in their order. */
  links: string[];
}

/** Numbers per name in Listing.stats (listDirectory writes them). */
export const NUMBERS = 5;

/**
 * One directory's listing. Runs in the threads, from its source text (so it may use nothing but its
 * arguments, and has no inner functions for a transpiler to wrap), and on the walk's own thread until
 * the first of them is up.
 */
export function listDirectory(fs: typeof import("node:fs"), dir: string): { names: string; stats: Float64Array; links: string[] } {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch (e) {
    // Removed while the walk ran: it was never there.
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    names = [];
  }
  const stats = new Float64Array(names.length * 5);
  const links: string[] = [];
  for (let i = 0, k = 0; i < names.length; i++, k += 5) {
    const path = dir + "/" + names[i];
    const st = fs.lstatSync(path, { throwIfNoEntry: false });
    if (st === undefined) {
      stats[k] = -1;
      continue;
    }
    if (st.isSymbolicLink()) {
      try {
        links.push(fs.readlinkSync(path));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        stats[k] = -1;
        continue;
      }
    }
    stats[k] = st.mode;
    stats[k + 1] = st.size;
    stats[k + 2] = st.mtimeMs;
    stats[k + 3] = st.ctimeMs;
    stats[k + 4] = st.ino;
  }
  return { names: names.join("\0"), stats, links };
}

/** The native lister (packages/core/native/listdir.c). Each answers undefined where it leaves the directory to JavaScript. */
export interface NativeLister {
  /** listDirectory's answer. */
  list(dir: string): ReturnType<typeof listDirectory> | undefined;
  /**
   * A layer commit's listing: the names in byte order, SCAN_NUMBERS per name (st_mode, uid, gid,
   * size, mtimeMs, nlink, dev, ino, rdev) and each entry's xattrs as (index, name, value) triples,
   * names in byte order; index -1 is the directory itself, listed with `self`.
   */
  scan(dir: string, self: boolean): { names: string; stats: Float64Array; attrs: Array<number | string | Buffer> } | undefined;
}

/** Numbers per name in a NativeLister.scan listing. */
export const SCAN_NUMBERS = 9;

/** The native lister this process uses, if listerChoice() picked one. */
export function nativeLister(): NativeLister | undefined {
  return listerChoice().native ? lister : undefined;
}

/** The native lister's file name beside the bundle (scripts/build.mjs writes it). */
export const LISTDIR_ADDON = `listdir.${process.platform}-${process.arch}.node`;

/** How this process lists directories: `native`, the addon's path, or why not (`problem`: it is there and failed to load). */
export interface ListerChoice {
  native?: string;
  why: string;
  problem?: boolean;
}

let choice: ListerChoice | undefined;
let lister: NativeLister | undefined;

/**
 * Which lister this process uses, decided once: MSTAGE_LISTDIR=js forces listDirectory, and
 * MSTAGE_LISTDIR=PATH names the addon; otherwise the addon beside the bundle, where the build
 * made one (none when run from the TypeScript sources).
 */
export function listerChoice(): ListerChoice {
  if (choice) return choice;
  const env = process.env.MSTAGE_LISTDIR;
  let path: string;
  if (env === "js") return (choice = { why: "MSTAGE_LISTDIR=js" });
  if (env) path = env;
  else {
    const here = import.meta.url;
    if (!here.startsWith("file:") || here.endsWith(".ts")) return (choice = { why: "run from the TypeScript sources, which have no native lister" });
    let dir = dirname(fileURLToPath(here));
    if (basename(dir) === "chunks") dir = dirname(dir);
    path = join(dir, LISTDIR_ADDON);
    if (!fs.existsSync(path)) return (choice = { why: `no ${LISTDIR_ADDON} beside the bundle (built without a C compiler, or for another platform)` });
  }
  try {
    lister = loadLister(path);
    return (choice = { native: path, why: `native (${path})` });
  } catch (e) {
    return (choice = { why: `${path} could not be loaded: ${(e as Error).message.split("\n")[0]}`, problem: true });
  }
}

/** The addon at `path` (loaded as a shared object, never as JavaScript); throws where it is not one. */
export function loadLister(path: string): NativeLister {
  const module = { exports: {} as Partial<NativeLister> };
  process.dlopen(module, path);
  const addon = module.exports;
  if (typeof addon?.list !== "function" || typeof addon.scan !== "function") throw new Error(`${path} is not mstage's native lister (no list() and scan())`);
  return addon as NativeLister;
}

/** One directory's listing on this thread, with the lister listerChoice() picked. */
export function listHereNow(dir: string): ReturnType<typeof listDirectory> {
  return nativeLister()?.list(dir) ?? listDirectory(fs, dir);
}

/**
 * Requests a pool has out at once at most: each holds a claim slot until its thread answers it.
 * More than the walk asks for (eight per thread, two threads at most), with room for the ones it
 * took back that are still in a thread's queue.
 */
const CLAIMS = 64;

// A request's claim, an Int32 in its slot of the shared claims: 0 asked, 1 the thread's, 2 taken back.
const WORKER_SOURCE = `
const { parentPort, workerData: { claims, native } } = require("node:worker_threads");
const fs = require("node:fs");
const listDirectory = ${listDirectory.toString()};
// loadLister's dlopen, inline: this code is source text, without the module's imports.
const lister = native ? (() => { const m = { exports: {} }; process.dlopen(m, native); return m.exports; })() : undefined;
parentPort.postMessage({ up: true });
parentPort.on("message", ({ id, slot, dir }) => {
  if (Atomics.compareExchange(claims, slot, 0, 1) !== 0) return parentPort.postMessage({ id, slot, taken: true });
  try {
    const l = (lister && lister.list(dir)) || listDirectory(fs, dir);
    parentPort.postMessage({ id, slot, ...l }, [l.stats.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, slot, error: String((e && e.message) || e), code: e && e.code });
  }
});
`;

interface Thread {
  worker: Worker;
  waiting: number;
}

/** Listings asked for and not yet answered, by request id. */
type Answer = { resolve: (l: Listing) => void; reject: (e: Error) => void; slot: number };

export class WalkPool {
  /** Whether a thread has started: until then the walk lists directories itself (a thread takes 30-200 ms to start). */
  up = false;
  private isUp!: () => void;
  /** Settles once a thread is up. */
  readonly started = new Promise<void>((up) => (this.isUp = up));
  private readonly threads: Thread[] = [];
  private readonly answers = new Map<number, Answer>();
  private nextId = 0;
  private readonly claims = new Int32Array(new SharedArrayBuffer(CLAIMS * 4));
  /** Claim slots whose last request was answered (or never made). */
  private readonly free = Array.from({ length: CLAIMS }, (_, i) => CLAIMS - 1 - i);

  /** `size`: the most threads it starts. */
  constructor(readonly size: number) {}

  /** Whether as many requests are out as the claims allow: ask for no more until one is answered. */
  get full(): boolean {
    return this.free.length === 0;
  }

  /** A directory's listing from a thread; `id` names the request for `take`. */
  list(dir: string): { id: number; listing: Promise<Listing> } {
    const slot = this.free.pop();
    if (slot === undefined) throw new Error("internal error (a bug in mstage): a listing asked of a full walk pool");
    const id = this.nextId++;
    Atomics.store(this.claims, slot, 0);
    const listing = new Promise<Listing>((resolve, reject) => this.answers.set(id, { resolve, reject, slot }));
    const t = this.threads.length < this.size ? this.start() : this.threads.reduce((a, b) => (b.waiting < a.waiting ? b : a));
    t.waiting++;
    t.worker.ref();
    t.worker.postMessage({ id, slot, dir });
    return { id, listing };
  }

  /**
   * Takes back a request its thread has not started on (true): the caller lists the directory
   * itself, and the request's listing never settles. False once the thread is on it.
   */
  take(id: number): boolean {
    const answer = this.answers.get(id);
    if (answer === undefined || Atomics.compareExchange(this.claims, answer.slot, 0, 2) !== 0) return false;
    this.answers.delete(id);
    return true;
  }

  /** Starts a thread if there is none yet, ahead of the first listing asked of it. */
  warm(): void {
    if (this.threads.length === 0) this.start();
  }

  private start(): Thread {
    const t: Thread = { worker: new Worker(WORKER_SOURCE, { eval: true, workerData: { claims: this.claims, native: listerChoice().native } }), waiting: 0 };
    t.worker.unref();
    t.worker.on("message", (m: { id: number; slot: number; up?: true; taken?: true; names?: string; stats?: Float64Array; links?: string[]; error?: string; code?: string }) => {
      if (m.up) {
        this.up = true;
        return this.isUp();
      }
      // The thread is done with the slot: it may serve another request.
      this.free.push(m.slot);
      // An idle thread must not keep the process alive.
      if (--t.waiting === 0) t.worker.unref();
      const answer = this.answers.get(m.id);
      // Taken back, or failed with a thread that died meanwhile.
      if (m.taken || answer === undefined) return;
      this.answers.delete(m.id);
      if (m.error !== undefined) answer.reject(Object.assign(new Error(m.error), m.code ? { code: m.code } : {}));
      else answer.resolve(listing(m as ReturnType<typeof listDirectory>));
    });
    const fail = (e: Error) => {
      const i = this.threads.indexOf(t);
      if (i < 0) return;
      this.threads.splice(i, 1);
      // Its requests cannot be told apart from the others' here: every one still waiting fails.
      for (const a of this.answers.values()) a.reject(e);
      this.answers.clear();
    };
    t.worker.on("error", fail);
    t.worker.on("exit", (code) => fail(new Error(`a directory-listing thread exited with code ${code}`)));
    this.threads.push(t);
    return t;
  }
}

/** A listDirectory answer with its names apart. */
export function listing(l: ReturnType<typeof listDirectory>): Listing {
  return { names: l.names === "" ? [] : l.names.split("\0"), stats: l.stats, links: l.links };
}

let pool: WalkPool | undefined;

/**
 * The process-wide pool (made on first use), or undefined on one core. One thread for each core
 * but the walk's own, at most WALK_THREADS: on 2 cores a second thread made the walk no faster
 * and cost 15 MB.
 */
export function walkPool(): WalkPool | undefined {
  const threads = Math.min(WALK_THREADS, availableParallelism() - 1);
  return threads < 1 ? undefined : (pool ??= new WalkPool(threads));
}

const WALK_THREADS = 2;
