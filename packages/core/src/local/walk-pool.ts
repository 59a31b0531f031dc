// Threads that list directories for a large local() walk: each reads one directory's names, sorts
// them and lstats every entry, so the system calls of a 200 000-file tree run beside the thread that
// matches, ignores and hashes (git's status does its lstat pass on threads the same way). A listing
// comes back as one string and one Float64Array, not an object per entry. The worker's code is a
// string evaluated in the thread, so it runs from the TypeScript sources and the bundle alike.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

/** One directory: its sorted names and, per name, NUMBERS numbers (see Listing.stats). */
export interface Listing {
  names: string[];
  /** Per name: st_mode (-1: gone before its lstat), size, mtimeMs, ctimeMs, ino. */
  stats: Float64Array;
  /** The targets of the symbolic links among the names, in their order. */
  links: string[];
}

export const NUMBERS = 5;

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
parentPort.on("message", ({ id, dir }) => {
  try {
    let names;
    try {
      names = fs.readdirSync(dir).sort();
    } catch (e) {
      // Removed while the walk ran: it was never there.
      if (e.code !== "ENOENT") throw e;
      names = [];
    }
    const stats = new Float64Array(names.length * ${NUMBERS});
    const links = [];
    for (let i = 0, k = 0; i < names.length; i++, k += ${NUMBERS}) {
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
          if (e.code !== "ENOENT") throw e;
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
    parentPort.postMessage({ id, names: names.join("\\0"), stats, links }, [stats.buffer]);
  } catch (e) {
    parentPort.postMessage({ id, error: String((e && e.message) || e), code: e && e.code });
  }
});
`;

interface Thread {
  worker: Worker;
  waiting: number;
}

/** Listings asked for and not yet answered, by request id. */
type Answer = { resolve: (l: Listing) => void; reject: (e: Error) => void };

class WalkPool {
  private readonly threads: Thread[] = [];
  private readonly answers = new Map<number, Answer>();
  private nextId = 0;

  constructor(private readonly size: number) {}

  list(dir: string): Promise<Listing> {
    const id = this.nextId++;
    const listing = new Promise<Listing>((resolve, reject) => this.answers.set(id, { resolve, reject }));
    const t = this.threads.length < this.size ? this.start() : this.threads.reduce((a, b) => (b.waiting < a.waiting ? b : a));
    t.waiting++;
    t.worker.ref();
    t.worker.postMessage({ id, dir });
    return listing;
  }

  private start(): Thread {
    const t: Thread = { worker: new Worker(WORKER_SOURCE, { eval: true }), waiting: 0 };
    t.worker.on("message", (m: { id: number; names?: string; stats?: Float64Array; links?: string[]; error?: string; code?: string }) => {
      const answer = this.answers.get(m.id)!;
      this.answers.delete(m.id);
      // An idle thread must not keep the process alive.
      if (--t.waiting === 0) t.worker.unref();
      if (m.error !== undefined) answer.reject(Object.assign(new Error(m.error), m.code ? { code: m.code } : {}));
      else answer.resolve({ names: m.names === "" ? [] : m.names!.split("\0"), stats: m.stats!, links: m.links! });
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
