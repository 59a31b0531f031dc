// Crash-safe file primitives for the store: every entry appears by one rename of a finished,
// fsynced temp file (or directory) that lived in the store's own tmp/ dir on the same filesystem,
// so a reader sees either nothing or the whole thing, and an interrupted write leaves only tmp/
// garbage that no reader ever looks at.
import { readdirSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { resolve } from "node:path";
import { UserError, fsyncDirAsync, tempName, writeFileDurably } from "@mstage/core";
import { runTool } from "../sandbox/tool-runner.ts";
import { findTool } from "../sandbox/tools.ts";

/** Writes `data` to `dest` durably (core's writer), its temp file in the store's `tmpDir`. */
export async function writeFileAtomic(dest: string, data: string | Uint8Array, tmpDir: string): Promise<void> {
  await writeFileDurably(dest, data, tempName(tmpDir));
}


/** Node error code of `e`, if any. */
export function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/**
 * syncfs(2) of the filesystem holding `path`, through coreutils' `sync -f` (Node has no binding):
 * one call makes many unsynced files durable at once, where an fsync each would wait on each.
 * Callers that ask while a sync of the same path runs share the next one (group commit): the
 * running sync may have started before their writes, the next starts after all of them, so one
 * syncfs serves every stage that finished in the meantime (issue 16: 2000 stages).
 */
export function syncFilesystem(path: string): Promise<void> {
  const abs = resolve(path);
  // One group per filesystem: a syncfs of any path on it serves all.
  const key = statSync(abs, { throwIfNoEntry: false })?.dev ?? abs;
  let g = syncGroups.get(key);
  if (!g) syncGroups.set(key, (g = {}));
  const group = g;
  if (group.next) return group.next;
  const start = (): Promise<void> => {
    const p = syncOnce(abs).finally(() => {
      if (group.running === p) group.running = undefined;
    });
    group.running = p;
    return p;
  };
  if (!group.running) return start();
  const next = group.running
    .catch(() => undefined)
    .then(() => {
      group.next = undefined;
      return start();
    });
  group.next = next;
  return next;
}

interface SyncGroup {
  /** The sync under way. */
  running?: Promise<void>;
  /** The sync that starts when the running one ends, shared by everyone who asked meanwhile. */
  next?: Promise<void>;
}
const syncGroups = new Map<number | string, SyncGroup>();

async function syncOnce(path: string): Promise<void> {
  // Through the sandbox's small shell: a spawn of this big process costs more.
  try {
    // Absolute: the shell runs in a directory of its own, so a relative store path would miss.
    await runTool(findTool("sync") ?? "sync", ["-f", path]);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new UserError(`cannot make the store at ${path} durable (sync -f): ${stderr || (err as Error).message}`, { cause: err });
  }
}

/** A tree with at most this many entries is made durable file by file rather than by a syncfs. */
export const SMALL_TREE_ENTRIES = 512;

/**
 * Makes the tree at `dir` durable: an fsync of each regular file and directory (then of `parent`,
 * which holds its name) when it has at most SMALL_TREE_ENTRIES entries, else one syncfs. A syncfs
 * also waits for every other dirty file on the filesystem: after a Go build that is its cache mount
 * (tens of MB), and on a shared machine everyone's writes, while a stage's own few files (a binary,
 * its sources) take one journal commit.
 */
export async function syncTree(dir: string, parent: string): Promise<void> {
  const entries = smallTree(dir);
  if (!entries) return syncFilesystem(dir);
  // Files first, then directories deepest first: a directory's fsync then commits its entries'
  // creations after their contents are on disk.
  const sync = async (path: string) => {
    const fh = await open(path, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  };
  try {
    await Promise.all(entries.files.map(sync));
    for (const d of entries.dirs.reverse()) await sync(d);
  } catch {
    // A file that cannot be opened here is still made durable by the filesystem's sync.
    return syncFilesystem(dir);
  }
  await fsyncDirAsync(parent);
}

/** The regular files and directories (`dir` first) of a tree of at most SMALL_TREE_ENTRIES entries, or null for a larger one. */
function smallTree(dir: string): { files: string[]; dirs: string[] } | null {
  const files: string[] = [];
  const dirs = [dir];
  let count = 0;
  for (let i = 0; i < dirs.length; i++) {
    for (const d of readdirSync(dirs[i]!, { withFileTypes: true })) {
      if (++count > SMALL_TREE_ENTRIES) return null;
      const path = dirs[i] + "/" + d.name;
      if (d.isDirectory()) dirs.push(path);
      else if (d.isFile()) files.push(path);
    }
  }
  return { files, dirs };
}
