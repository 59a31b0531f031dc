// The one way mstage replaces a file: write a temp file, rename it over the target, so a crash or a
// second mstage never leaves half a file. Two flavours of the same steps: the project's own small
// files (images.lock, .mstage/state.json, the stat cache, the compile cache), written synchronously
// beside their target; and the store's entries, fsynced with their directory, their temp file in the
// store's tmp/ so that gc can clear what a dead writer left.
import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

let seq = 0;

/** Writes `data` to `file` atomically, creating its directory if needed. */
export function writeFileAtomicSync(file: string, data: string | Uint8Array): void {
  mkdirSync(dirname(file), { recursive: true });
  // pid + a counter: two processes, or two writes in one process, never share a temp file.
  const tmp = `${file}.${process.pid}.${++seq}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Writes `data` to `dest` so that it survives a crash: into the fresh temp file `tmp` (same
 * filesystem), fsync, rename, fsync of the parent directory.
 */
export async function writeFileDurably(dest: string, data: string | Uint8Array, tmp: string): Promise<void> {
  await writeNewFileSynced(tmp, data);
  try {
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await fsyncDirAsync(dirname(dest));
}

/** Creates `file` (it must not exist) with `data`, fsynced: a step of a durable write. */
export async function writeNewFileSynced(file: string, data: string | Uint8Array): Promise<void> {
  const fh = await open(file, "wx", 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A project file's text, or undefined when it does not exist (images.lock, state.json). */
export function readFileIfPresent(file: string): string | undefined {
  try {
    // Sync: on a no-op plan, loading node:fs/promises and a FileHandle costs more than the read.
    return readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Flushes a directory's entry table, so a rename into it survives a crash. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * fsyncDir off the main thread: a builder records results while other stages build, and a directory
 * fsync waits for a journal commit that the other stages' writes make long (issue 16: 2000 stages).
 */
export async function fsyncDirAsync(dir: string): Promise<void> {
  let fh: import("node:fs/promises").FileHandle | undefined;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await fh?.close();
  }
}

/** Identifies this process in temp and lock names: pid plus its start time, so a reused pid is not mistaken for us. */
export function processTag(): string {
  // Read once: every temp name carries it, and /proc/PID/stat was read for each (issue 16).
  tag ??= `${process.pid}.${processStartTime(process.pid) ?? 0}`;
  return tag;
}
let tag: string | undefined;

/** The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or null if it is gone. */
export function processStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // The command name (field 2) may contain spaces and parentheses; fields resume after the last ")".
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(rest[19]);
  } catch {
    return null;
  }
}

/** Whether the process that wrote `tag` (from processTag()) is still running. */
export function tagAlive(tag: string): boolean {
  const [pid, start] = tag.split(".").map(Number);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = processStartTime(pid);
  return now !== null && now === start;
}

/** A fresh name for a temp file or dir under `tmpDir`; the name carries the owner for stale cleanup. */
export function tempName(tmpDir: string, hint = ""): string {
  return join(tmpDir, `${processTag()}.${randomBytes(6).toString("hex")}${hint ? "." + hint : ""}`);
}
