// Cross-process lock of a store, without flock: lock files created with O_EXCL that name their owner
// (pid + start time), and a heartbeat (the owner touches its file) so a dead owner's file is stale
// even when its pid cannot be checked from here (another pid namespace).
//
// Writes into the store need no lock at all: every entry appears by an atomic rename of a verified
// temp file, so two builders writing the same blob or layer both succeed and one copy wins. The lock
// exists for gc: builders hold it shared (a registration file each) for the whole build, gc holds it
// exclusively. Each side first announces itself, then looks for the other, so at least one of two
// racing processes sees the other and backs off.
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UserError, processTag, tagAlive } from "@mstage/core";
import { errno } from "./atomic-files.ts";

export type LockMode = "shared" | "exclusive";

export interface StoreLock {
  readonly mode: LockMode;
  release(): void;
}

export interface LockOptions {
  /** Give up after this long (ms); default 10 minutes for shared, 0 (fail at once) for exclusive. */
  timeoutMs?: number;
  /** Told once when the lock has to wait for another process. */
  onWait?: (message: string) => void;
}

const HEARTBEAT_MS = 5_000;
/** A lock file whose owner has not touched it for this long is stale. */
const STALE_MS = 60_000;
const EXCLUSIVE = "exclusive";

interface Holder {
  file: string;
  /** processTag() of the owner. */
  tag: string;
  /** The owner's pid namespace; its pid means something here only if it is ours. */
  pidns: string;
}

/** This process's pid namespace (`pid:[inode]`), or "" where /proc does not say. */
export function pidNamespace(): string {
  try {
    return readlinkSync("/proc/self/ns/pid");
  } catch {
    return "";
  }
}

function ownerLine(): string {
  return `${processTag()} ${pidNamespace()}\n`;
}

function readHolder(file: string): Holder | null {
  try {
    const [tag = "", pidns = ""] = readFileSync(file, "utf8").trim().split(" ");
    return { file, tag, pidns };
  } catch (e) {
    if (errno(e) === "ENOENT") return null;
    throw e;
  }
}

/** A holder is live when its process runs, or (if that cannot be told) its heartbeat is recent. */
function live(h: Holder): boolean {
  if (h.pidns && h.pidns === pidNamespace()) return tagAlive(h.tag);
  try {
    return Date.now() - statSync(h.file).mtimeMs < STALE_MS;
  } catch {
    return false;
  }
}

function liveShared(dir: string): Holder[] {
  const out: Holder[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.startsWith("shared.")) continue;
    const h = readHolder(join(dir, name));
    if (!h) continue;
    if (live(h)) out.push(h);
    else rmSync(h.file, { force: true });
  }
  return out;
}

function tryCreate(file: string): boolean {
  try {
    writeFileSync(file, ownerLine(), { flag: "wx" });
    return true;
  } catch (e) {
    if (errno(e) === "EEXIST") return false;
    throw e;
  }
}

/** Holds the exclusive lock file, removing a stale one first. */
function tryExclusive(dir: string): Holder | null {
  const file = join(dir, EXCLUSIVE);
  if (tryCreate(file)) return null;
  const h = readHolder(file);
  if (h && !live(h)) {
    rmSync(file, { force: true });
    if (tryCreate(file)) return null;
    return readHolder(file);
  }
  return h ?? readHolder(file);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Takes the store lock in `dir` (the store's locks/ directory). */
export async function acquireLock(dir: string, mode: LockMode, opts: LockOptions = {}): Promise<StoreLock> {
  const tag = processTag();
  const timeout = opts.timeoutMs ?? (mode === "shared" ? 600_000 : 0);
  const deadline = Date.now() + timeout;
  let told = false;
  const wait = async (why: string): Promise<void> => {
    if (Date.now() >= deadline) throw new UserError(`the store is busy: ${why}; try again when it finishes`);
    if (!told) opts.onWait?.(`waiting for the store: ${why}`);
    told = true;
    await sleep(200);
  };

  for (;;) {
    if (mode === "shared") {
      const file = join(dir, `shared.${tag}.${randomBytes(4).toString("hex")}`);
      writeFileSync(file, ownerLine(), { flag: "wx" });
      const gc = readHolder(join(dir, EXCLUSIVE));
      if (!gc || !live(gc)) return heldLock(mode, file);
      rmSync(file, { force: true });
      await wait(`mstage gc (pid ${gc.tag.split(".")[0]}) is cleaning it`);
    } else {
      const other = tryExclusive(dir);
      if (other) {
        await wait(`another mstage gc (pid ${other.tag.split(".")[0]}) is running`);
        continue;
      }
      const file = join(dir, EXCLUSIVE);
      const users = liveShared(dir);
      if (!users.length) return heldLock(mode, file);
      rmSync(file, { force: true });
      await wait(`mstage (pid ${users.map((u) => u.tag.split(".")[0]).join(", ")}) is using it`);
    }
  }
}

function heldLock(mode: LockMode, file: string): StoreLock {
  const beat = setInterval(() => {
    const now = new Date();
    try {
      utimesSync(file, now, now);
    } catch {
      // Released or removed by a later gc; nothing to keep alive.
    }
  }, HEARTBEAT_MS);
  beat.unref();
  let released = false;
  return {
    mode,
    release() {
      if (released) return;
      released = true;
      clearInterval(beat);
      rmSync(file, { force: true });
    },
  };
}
