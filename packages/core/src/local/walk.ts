// The exact file list of a `local()` source: what its digest covers and what the builder copies.
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync, type Stats } from "node:fs";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { UserError } from "../errors.ts";
import type { LocalSource } from "../model.ts";
import { nonUtf8Name } from "./names.ts";
import { AnchoredPatterns, IgnoreRules, dockerignorePatterns, parseIgnoreFile, wildcardAt } from "./ignore.ts";
import { NUMBERS, listHereNow, listing, walkPool, type Listing } from "./walk-pool.ts";

export interface LocalEntry {
  /**
   * Path relative to the source, "/"-separated. "" is the source itself when it is a single file
   * (copied to the destination path); a directory source lists its contents, not itself.
   */
  rel: string;
  abs: string;
  type: "file" | "dir" | "symlink";
  /** Permission bits (mode & 0o7777). */
  mode: number;
  size: number;
  linkTarget?: string;
  /** The lstat result, for the stat cache. */
  stat?: Stats;
}

/**
 * Project-wide ignore rules: `.mstageignore` beside images.ts (gitignore syntax) or, when there is
 * none, the `.dockerignore` a Docker user already has (Docker's syntax). `file` says which one was
 * read. Read once per project and run.
 */
export function projectIgnore(projectDir: string): IgnoreRules {
  const own = readIfExists(join(projectDir, ".mstageignore"));
  if (own !== undefined) return new IgnoreRules(parseIgnoreFile(own), ".mstageignore");
  const docker = readIfExists(join(projectDir, ".dockerignore"));
  if (docker !== undefined) return new IgnoreRules(dockerignorePatterns(docker), ".dockerignore");
  return new IgnoreRules([]);
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    return undefined;
  }
}

/** The host path of a local source (or bind): relative to the project directory unless absolute. */
export function localPath(path: string, projectDir: string): string {
  return isAbsolute(path) ? path : resolve(projectDir, path);
}

/**
 * Lists a local source, sorted by `rel`, honouring its `exclude` and the project's `.mstageignore`
 * (which never applies to the source path itself). The project's `.mstage/` and its default output
 * `oci/` (when it is an OCI layout) are always left out.
 */
export async function walkLocal(src: LocalSource, projectDir: string): Promise<LocalEntry[]> {
  return walkLocalSync(src.path, projectDir, { exclude: src.exclude, include: src.include, projectIgnore: projectIgnore(projectDir), glob: true });
}

export interface WalkOptions {
  /** gitignore patterns relative to the source directory: left out. */
  exclude?: readonly string[];
  /** gitignore patterns relative to the source directory: when given, only what matches (and the directories leading to it). */
  include?: readonly string[];
  projectIgnore?: IgnoreRules;
  /** `*`, `?` and `[…]` in `path` are wildcards (a `local()` source; never a bind). */
  glob?: boolean;
}

/** Whether a local() path has Docker COPY wildcards (`*`, `?`, `[`) in it. */
export function isGlob(path: string): boolean {
  return /[*?[]/.test(path);
}

/** The part of a path before its first wildcard component: the directory a glob is matched under. */
export function globBase(path: string): string {
  const parts = path.split("/");
  const i = parts.findIndex((p) => isGlob(p));
  return i < 0 ? path : parts.slice(0, i).join("/") || (path.startsWith("/") ? "/" : ".");
}

export function walkLocalSync(path: string, projectDir: string, o: WalkOptions): LocalEntry[] {
  const entries: LocalEntry[] = [];
  walkLocalEach(path, projectDir, { ...o, include: undefined }, (e) => entries.push(e));
  return o.include?.length ? included(entries, new AnchoredPatterns(o.include)) : entries;
}

/**
 * The entries walkLocalSync lists, in its order, handed to `emit` one at a time so that a walk of a
 * large tree holds none of them (with `include`, the list is needed to keep parent directories).
 */
export function walkLocalEach(path: string, projectDir: string, o: WalkOptions, emit: (e: LocalEntry) => void): void {
  if (o.include?.length) {
    for (const e of walkLocalSync(path, projectDir, o)) emit(e);
    return;
  }
  if (o.glob && isGlob(path)) walkGlob(path, projectDir, o, emit);
  else walkOne(path, projectDir, o, emit);
}

/**
 * Docker's `COPY sub/l* dest/`: every match (Go filepath.Match per name, sorted) is a source of its
 * own; a single match is as if it were written out; with several, each file goes in by its name
 * and each directory's contents are copied. No match is an error, as in Docker.
 */
function walkGlob(path: string, projectDir: string, o: WalkOptions, emit: (e: LocalEntry) => void): void {
  const abs = localPath(path, projectDir);
  let found = [abs.startsWith("/") ? "/" : ""];
  for (const part of abs.split("/").filter(Boolean)) {
    const next: string[] = [];
    for (const dir of found) {
      if (!isGlob(part)) {
        next.push(join(dir, part));
        continue;
      }
      let names: string[];
      try {
        names = readdirSync(dir).sort();
      } catch {
        continue;
      }
      const re = globRegExp(part);
      for (const n of names) {
        if (!re.test(n)) continue;
        if (n.includes("\uFFFD")) {
          const shown = nonUtf8Name(dir, n);
          if (shown !== undefined) {
            const inProject = relative(projectDir, dir);
            const where = join(inProject.startsWith("..") || isAbsolute(inProject) ? dir : inProject, shown);
            throw new UserError(`${path}: ${where} is a file name that is not UTF-8, and an image layer holds UTF-8 names only: rename it`);
          }
        }
        next.push(join(dir, n));
      }
    }
    found = next.filter((p) => existsSync(p) || lstatExists(p));
  }
  const project = o.projectIgnore && !o.projectIgnore.empty ? o.projectIgnore : undefined;
  found = found.filter((p) => {
    const rel = relative(projectDir, p);
    if (rel.startsWith("..") || isAbsolute(rel)) return true;
    return !project?.ignores(rel.split(sep).join("/"), statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false);
  });
  if (found.length === 0) throw new UserError(`${path}: no files match (Docker's COPY fails the same way)`);
  if (found.length === 1) return walkOne(found[0]!, projectDir, o, emit);
  for (const m of found) walkOne(m, projectDir, o, (e) => emit(e.rel === "" ? { ...e, rel: m.split("/").pop()! } : e));
}

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** One name's wildcard pattern as Go's filepath.Match reads it: `*`, `?`, `[…]` (with `^`/`!`), `\` escapes. */
export function globRegExp(part: string): RegExp {
  let re = "";
  for (let i = 0; i < part.length; i++) {
    const [one, last] = wildcardAt(part, i, "^!");
    re += one;
    i = last;
  }
  return new RegExp(`^${re}$`);
}

/** Only entries `include` matches (itself or through a matched parent directory), and the directories on the way to them, as BuildKit's include filter gives them. */
function included(entries: LocalEntry[], include: AnchoredPatterns): LocalEntry[] {
  if (entries.length === 1 && entries[0]!.rel === "") return entries;
  const keep = new Set<string>();
  for (const e of entries) {
    if (!include.matches(e.rel)) continue;
    keep.add(e.rel);
    for (let i = e.rel.lastIndexOf("/"); i > 0; i = e.rel.lastIndexOf("/", i - 1)) keep.add(e.rel.slice(0, i));
  }
  return entries.filter((e) => keep.has(e.rel));
}

/** The root of one source, stat'ed: a file is the whole source. */
function statRoot(path: string, projectDir: string): { root: string; st: Stats } {
  const root = localPath(path, projectDir);
  let st: Stats;
  try {
    st = statSync(root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${path}: ${code === "ENOENT" ? "no such file or directory" : (e as Error).message} (${root})`);
  }
  if (!st.isFile() && !st.isDirectory()) throw new UserError(`${path}: not a file or directory (${root})`);
  return { root, st };
}

/** Whether the walk leaves out an entry below `root`: exclude, the project's ignore file, mstage's own dirs. */
function skipper(root: string, projectDir: string, o: WalkOptions): Skip {
  const exclude = new IgnoreRules(o.exclude ?? []);
  const project = o.projectIgnore && !o.projectIgnore.empty ? o.projectIgnore : undefined;
  const projectRel = relative(projectDir, root);
  const underProject = projectRel === "" || (!projectRel.startsWith("..") && !isAbsolute(projectRel));
  const prefix = projectRel === "" ? "" : projectRel.split(sep).join("/") + "/";
  const stateDir = join(projectDir, ".mstage");
  // mstage's default output: `local(".")` must not copy the images it produced last time.
  const outputDir = join(projectDir, "oci");
  const skip: Skip = (abs, rel, isDir) =>
    abs === stateDir ||
    (abs === outputDir && isDir && existsSync(join(abs, "oci-layout"))) ||
    (!exclude.empty && exclude.ignores(rel, isDir)) ||
    (project !== undefined && underProject && project.ignores(prefix + rel, isDir));
  skip.patterns = !exclude.empty || (project !== undefined && underProject);
  skip.bind = !o.glob;
  return skip;
}

/**
 * Refuses a name that is not UTF-8. Node reads it with U+FFFD in its bytes' place: a name no lstat
 * finds (the walk would take it for a file removed meanwhile), or, beside a name that is that very
 * UTF-8, the other file twice. An image layer cannot hold it. Left out by the source's patterns
 * (matched against the name as Node reads it), it is left out.
 */
function refuseNonUtf8(path: string, dir: string, relDir: string, name: string, skip: Skip): void {
  if (!name.includes("\uFFFD")) return;
  const rel = relDir === "" ? name : relDir + "/" + name;
  if (skip(dir + "/" + name, rel, false)) return;
  const shown = nonUtf8Name(dir, name);
  if (shown === undefined) return;
  const where = relDir === "" ? shown : relDir + "/" + shown;
  // A bind is never copied into a layer, but its files are its stage's key, which names them.
  throw new UserError(
    skip.bind
      ? `${path}: ${where} is a file name that is not UTF-8, and a bind's key names its files in UTF-8 only: rename it`
      : `${path}: ${where} is a file name that is not UTF-8, and an image layer holds UTF-8 names only: rename it, or leave it out (exclude, .mstageignore)`,
  );
}

/** Whether to leave an entry out; `patterns`: whether any pattern can (else only mstage's own dirs). */
type Skip = ((abs: string, rel: string, isDir: boolean) => boolean) & { patterns?: boolean; /** The walk of a bind (no wildcards, never copied). */ bind?: boolean };

function walkOne(path: string, projectDir: string, o: WalkOptions, emit: (e: LocalEntry) => void): void {
  const { root, st } = statRoot(path, projectDir);
  if (st.isFile()) return emit({ rel: "", abs: root, type: "file", mode: st.mode & 0o7777, size: st.size, stat: st });
  const skip = skipper(root, projectDir, o);
  const visit = (dir: string, relDir: string) => {
    const names = readdirGone(dir);
    for (const name of names) {
      const abs = dir + "/" + name;
      const rel = relDir === "" ? name : relDir + "/" + name;
      // A file deleted while the walk runs (an editor's temp file, git's gc) was never there.
      refuseNonUtf8(path, dir, relDir, name, skip);
      const ls = lstatSync(abs, { throwIfNoEntry: false });
      if (ls === undefined) continue;
      const isDir = ls.isDirectory();
      if (skip(abs, rel, isDir)) continue;
      const mode = ls.mode & 0o7777;
      if (isDir) {
        emit({ rel, abs, type: "dir", mode, size: 0, stat: ls });
        visit(abs, rel);
      } else if (ls.isFile()) {
        emit({ rel, abs, type: "file", mode, size: ls.size, stat: ls });
      } else if (ls.isSymbolicLink()) {
        emit({ rel, abs, type: "symlink", mode, size: 0, linkTarget: readlinkSync(abs), stat: ls });
      }
      // Sockets, fifos and devices cannot be copied into an image: left out.
    }
  };
  visit(root, "");
  // Sorted by rel with "/" ordering before any other character would need a custom compare;
  // the depth-first order of sorted names is already deterministic.
}

/** What the stat cache compares of a file: Stats has it, and so does a listing thread's answer. */
export interface StatFingerprint {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

/**
 * An entry of walkLocalParallel: a LocalEntry whose stat is only the fingerprint. The threaded walk
 * hands over one object, changed for each entry (read it before the next), and may name the entry
 * by its directory and name alone: `abs` and `rel` are then made only when read.
 */
export type WalkedEntry = Omit<LocalEntry, "stat"> & {
  stat: StatFingerprint;
  /** When set: `abs` is `dir + "/" + name`, `rel` is `relDir + "/" + name` (or `name` at the top). */
  dir?: string;
  relDir?: string;
  name?: string;
};

/** The one entry the threaded walk hands over, filled anew for each. */
class Walked implements WalkedEntry {
  dir = "";
  relDir = "";
  name = "";
  type: LocalEntry["type"] = "file";
  mode = 0;
  size = 0;
  linkTarget: string | undefined = undefined;
  readonly stat: StatFingerprint = { size: 0, mtimeMs: 0, ctimeMs: 0, ino: 0 };
  get abs(): string {
    return this.dir + "/" + this.name;
  }
  get rel(): string {
    return this.relDir === "" ? this.name : this.relDir + "/" + this.name;
  }
}

/**
 * walkLocalEach's entries, in its order, with the directories listed and lstat'ed on the walk
 * pool's threads, ahead of this one (a few at a time, AHEAD at most), and here when the walk
 * reaches one they were not asked for yet. Wildcard and include sources, rare and small, walk as walkLocalEach does.
 */
export async function walkLocalParallel(path: string, projectDir: string, o: WalkOptions, emit: (e: WalkedEntry) => void): Promise<void> {
  if (o.include?.length || (o.glob && isGlob(path))) return walkLocalEach(path, projectDir, o, (e) => emit(e as WalkedEntry));
  const { root, st } = statRoot(path, projectDir);
  if (st.isFile()) return emit({ rel: "", abs: root, type: "file", mode: st.mode & 0o7777, size: st.size, stat: st });
  const pool = walkPool();
  if (!pool) return walkOne(path, projectDir, o, (e) => emit(e as WalkedEntry));
  const skip = skipper(root, projectDir, o);
  const projectDirAbs = resolve(projectDir);
  interface Dir {
    listing: Listing;
    /** Per name: left out (or gone). */
    skipped: Uint8Array;
    /** Per kept directory name, its own listing. */
    subdirs: Map<number, Ahead>;
  }
  /** A directory below, listed ahead of the walk or when the walk reaches it. */
  interface Ahead {
    dir: string;
    rel: string;
    listed?: Promise<Dir>;
    /** The request of a thread asked for it, until it answers. */
    asked?: number;
  }
  const queue: Ahead[] = [];
  let queued = 0;
  /** Listed or being listed, not yet walked: what the walk holds in memory ahead of itself. */
  let ahead = 0;
  /** Asked of the threads and not yet answered. */
  let asked = 0;
  /**
   * `now`: the walk has reached it. A directory the threads were not asked for yet, or whose thread
   * has not started on it, is then listed here at once: on two cores the lstat calls are most of
   * the work, and this thread would otherwise wait for a thread that is behind (under load, for
   * the scheduler to run that thread and then this one again, a wait per directory).
   */
  const list = (a: Ahead, now: boolean): Promise<Dir> => {
    if (a.listed) {
      if (!now || a.asked === undefined || !pool.take(a.asked)) return a.listed;
      a.asked = undefined;
      asked--;
      return (a.listed = listed(a, listHere(a.dir)));
    }
    ahead++;
    // Until a thread is up (its start takes longer than a few directories), listed here, in order.
    if (!pool.up || now) return (a.listed = listed(a, (pool.warm(), listHere(a.dir))));
    asked++;
    const request = pool.list(a.dir);
    a.asked = request.id;
    return (a.listed = listed(
      a,
      request.listing.finally(() => {
        a.asked = undefined;
        asked--;
        more();
      }),
    ));
  };
  /** The directory's entries once listed: its subdirectories queued, what the walk leaves out marked. */
  const listed = (a: Ahead, pending: Promise<Listing>): Promise<Dir> => {
    const dir = pending.then((listing) => {
      const skipped = new Uint8Array(listing.names.length);
      const subdirs = new Map<number, Ahead>();
      // Without patterns, only .mstage/ and oci/ are left out, and only in the project directory.
      const patterns = skip.patterns || a.dir === projectDirAbs;
      listing.names.forEach((name, i) => {
        const mode = listing.stats[i * NUMBERS]!;
        const isDir = (mode & S_IFMT) === S_IFDIR;
        refuseNonUtf8(path, a.dir, a.rel, name, skip);
        if (mode < 0) skipped[i] = 1;
        else if (patterns || isDir) {
          const abs = a.dir + "/" + name;
          const rel = a.rel === "" ? name : a.rel + "/" + name;
          if (patterns && skip(abs, rel, isDir)) skipped[i] = 1;
          else if (isDir) {
            const sub = { dir: abs, rel };
            subdirs.set(i, sub);
            queue.push(sub);
          }
        }
      });
      more();
      return { listing, skipped, subdirs };
    });
    // Awaited in walk order, maybe after it failed: not an unhandled rejection meanwhile.
    dir.catch(() => {});
    return dir;
  };
  // The threads are asked for the farthest directories of the next AHEAD, this thread lists the
  // nearest ones the walk reaches first: they meet where their speeds put them.
  const more = () => {
    while (queued < queue.length && queue[queued]!.listed) queued++;
    if (queued === queue.length) queue.length = queued = 0;
    if (!pool.up) return;
    for (let j = Math.min(queue.length, queued + AHEAD - ahead) - 1; j >= queued && ahead < AHEAD && asked < ASKED * pool.size && !pool.full; j--) if (!queue[j]!.listed) list(queue[j]!, false);
  };
  const e = new Walked();
  const visit = async (d: Dir, dir: string, relDir: string): Promise<void> => {
    const { names, stats, links } = d.listing;
    let link = 0;
    for (let i = 0; i < names.length; i++) {
      const k = i * NUMBERS;
      const format = stats[k]! & S_IFMT;
      if (format === S_IFLNK) link++;
      if (d.skipped[i]) continue;
      if (format !== S_IFDIR && format !== S_IFREG && format !== S_IFLNK) continue;
      e.dir = dir;
      e.relDir = relDir;
      e.name = names[i]!;
      e.mode = stats[k]! & 0o7777;
      e.stat.size = stats[k + 1]!;
      e.stat.mtimeMs = stats[k + 2]!;
      e.stat.ctimeMs = stats[k + 3]!;
      e.stat.ino = stats[k + 4]!;
      e.linkTarget = format === S_IFLNK ? links[link - 1]! : undefined;
      e.type = format === S_IFDIR ? "dir" : format === S_IFREG ? "file" : "symlink";
      e.size = format === S_IFREG ? e.stat.size : 0;
      if (format === S_IFDIR) {
        const abs = e.abs;
        const rel = e.rel;
        emit(e);
        const sub = await list(d.subdirs.get(i)!, true);
        ahead--;
        more();
        await visit(sub, abs, rel);
      } else emit(e);
      // Sockets, fifos and devices cannot be copied into an image: left out.
    }
  };
  const top = await list({ dir: root, rel: "" }, true);
  ahead--;
  await visit(top, root, "");
}

/** Directories listed ahead of the walk at most (a few MB for directories of a thousand files). */
const AHEAD = 32;
/**
 * Directories asked of each thread at a time: enough that it never waits for this thread to ask
 * for more (this thread takes back the ones it reaches before the thread starts on them).
 */
const ASKED = 8;

/**
 * A directory listed on this thread, after a turn of the event loop: the threads' answers that came
 * meanwhile (their word that they are up, listings) are taken first, and they are asked for more.
 */
function listHere(dir: string): Promise<Listing> {
  return new Promise((done, fail) =>
    setImmediate(() => {
      try {
        done(listing(listHereNow(dir)));
      } catch (e) {
        fail(e);
      }
    }),
  );
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** A directory's names, sorted; none when it was removed while the walk ran. */
function readdirGone(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}
