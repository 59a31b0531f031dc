// Mounts a stage's root filesystem: overlayfs (with `userxattr`, as an unprivileged user namespace
// requires) of the extracted layers, plus the stage's upper dir when it will be written.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { UserError, tempName } from "@mstage/core";
import { requireTool } from "./tools.ts";
import { inUserNamespace } from "./userns.ts";
import { releaseDevTemplate } from "./devices.ts";
import { runTool } from "./tool-runner.ts";

export interface RootfsOptions {
  /** Read-only lower dirs, top first (extracted layers). Empty for `scratch()`. */
  lowers: string[];
  /** Where this stage's changes go; without it the mount is read-only. */
  upper?: string;
  /** overlayfs work dir: empty, on the same filesystem as `upper` (default: a sibling of `upper`). */
  work?: string;
  /**
   * Extra directories a step will mount over (binds, caches), so no mountpoint lands in `upper`.
   * With `upper`, a scaffold lower dir at the bottom provides these and the standard mountpoints.
   */
  mountpoints?: string[];
  /** Where the mountpoint and scaffold live (default: the OS temp dir). */
  tmpDir?: string;
  /**
   * A directory (the store's tmp/) where, while the caller holds it (holdScratch), this process
   * keeps a tmpfs for the mountpoint, scaffold and the steps' /dev and small files instead of `tmpDir`.
   */
  scratchIn?: string;
}

/**
 * Paths that every `run` mounts over. They exist in a scaffold dir at the bottom of the stack, so an
 * image that lacks them still shows them and mounting over them never creates a file in `upper`.
 */
export const SCAFFOLD_DIRS = ["proc", "dev", "sys", "tmp", "etc", "run/secrets"];
export const SCAFFOLD_FILES = ["etc/resolv.conf", "etc/hosts"];

/** overlayfs' mount data is one page; longer lowerdir lists are passed relative to a shared parent. */
const MAX_MOUNT_DATA = 3800;

function checkPath(p: string): void {
  if (/[:,\\\n]/.test(p)) throw new UserError(`cannot use ${JSON.stringify(p)} as an overlay dir: the path contains ":", "," or "\\"`);
}

async function mountOverlay(merged: string, lowers: string[], upper?: string, work?: string): Promise<void> {
  for (const p of [...lowers, upper, work]) if (p) checkPath(p);
  let cwd: string | undefined;
  let shown = lowers;
  const data = (ls: string[]) =>
    // uuid=off: overlayfs (6.6+) would otherwise mark the upper dir with a user.overlay.uuid xattr,
    // which the commit leaves out and adopting the dir as a layer then spawns setfattr to remove.
    // volatile: the unmount would sync the store's whole filesystem (and every fsync of a step,
    // dpkg's many, would reach the disk), yet an upper dir is only ever trusted through the commit,
    // which syncs the filesystem once before the stage's result is recorded (layer/adopt.ts), and
    // a build killed before that throws the upper dir away. Each mount has a fresh work dir, so
    // the work/incompat/volatile marker never blocks a later mount.
    ["userxattr", `lowerdir=${ls.join(":")}`, ...(upper ? ["uuid=off", "volatile", `upperdir=${upper}`, `workdir=${work}`] : [])].join(",");
  if (data(lowers).length > MAX_MOUNT_DATA) {
    cwd = commonParent(lowers);
    shown = lowers.map((l) => relative(cwd!, l) || ".");
  }
  try {
    await runTool(requireTool("mount"), ["-t", "overlay", "overlay", "-o", data(shown), merged], { cwd });
  } catch (e) {
    const err = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
    throw new UserError(`could not mount the stage's overlay filesystem: ${err}`, {
      cause: e,
      detail: "mstage must run inside its user namespace (reexecInUserNamespace) on a kernel with unprivileged overlayfs (5.11+); run `mstage doctor`",
    });
  }
}

function commonParent(paths: string[]): string {
  let parent = dirname(paths[0]);
  while (!paths.every((p) => p.startsWith(parent + "/"))) parent = dirname(parent);
  return parent;
}

/** Lazily detaches the mount; ok when it is already gone. */
export async function unmount(path: string): Promise<void> {
  try {
    await runTool(requireTool("umount"), ["-l", path]);
  } catch (e) {
    const err = (e as { stderr?: string }).stderr ?? "";
    if (!/not mounted|no mount point/i.test(err)) throw e;
  }
}

/**
 * Mounts the rootfs for the duration of `fn`, and always unmounts it and removes the mountpoint and
 * scaffold (also when `fn` throws). Must run inside mstage's user namespace.
 */
export async function withRootfs<T>(opts: RootfsOptions, fn: (merged: string) => Promise<T>): Promise<T> {
  if (!inUserNamespace()) throw new Error("withRootfs must run inside mstage's user namespace: call reexecInUserNamespace() first");
  // Its entries are made and removed synchronously: on the scratch tmpfs each takes microseconds,
  // less than handing it to libuv's threads and back.
  const base = mkdtempSync(join(opts.scratchIn ? await scratchDir(opts.scratchIn, opts.tmpDir) : (opts.tmpDir ?? tmpdir()), "mstage-rootfs-"));
  let work = opts.work;
  let ownWork = false;
  let mounted = false;
  const merged = join(base, "merged");
  try {
    mkdirSync(merged);
    const lowers = [...opts.lowers];
    if (opts.upper) {
      // Only a writable rootfs runs steps; a read-only one is read (copy sources, squash) and must
      // show the image exactly.
      const scaffold = join(base, "scaffold");
      makeScaffold(scaffold, opts.mountpoints ?? []);
      lowers.push(scaffold);
      if (!work) {
        work = await mkdtemp(join(dirname(opts.upper), ".work-"));
        ownWork = true;
      }
    } else {
      // A read-only overlay needs two lowers; empty ones cost nothing.
      for (let i = 0; lowers.length < 2; i++) {
        const empty = join(base, `empty${i}`);
        mkdirSync(empty);
        lowers.push(empty);
      }
    }
    await mountOverlay(merged, lowers, opts.upper, work);
    mounted = true;
    return await fn(merged);
  } finally {
    releaseDevTemplate(merged);
    if (mounted) await unmount(merged);
    rmSync(base, { recursive: true, force: true });
    if (ownWork && work) await rm(work, { recursive: true, force: true });
  }
}

/**
 * The scratch tmpfs's size. mstage's own entries there take a few KB per stage; the rest is what
 * steps write into /dev (a dir of it), which Docker caps at 64 MiB (runc's `/dev` tmpfs,
 * size=65536k). Unbounded, a step filling /dev would fill the host's memory instead of failing
 * with ENOSPC, as it does in Docker.
 */
const SCRATCH_SIZE = "64m";

interface Scratch {
  /** Builds holding it (holdScratch); it is mounted while there is one. */
  holders: number;
  dir?: Promise<string | undefined>;
}
const scratch = new Map<string, Scratch>();

/**
 * Lets withRootfs put its entries on a tmpfs in `parent` (the store's tmp/) until the returned
 * function is called: a build holds it for its whole run. The tmpfs is mounted on first use, in
 * this process's own mount namespace (so it is gone with the process, killed or not), and
 * unmounted and its mountpoint removed when the last holder lets go.
 */
export function holdScratch(parent: string): () => Promise<void> {
  let s = scratch.get(parent);
  if (!s) scratch.set(parent, (s = { holders: 0 }));
  const held = s;
  held.holders++;
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    if (--held.holders > 0) return;
    scratch.delete(parent);
    const dir = await held.dir;
    if (!dir) return;
    await unmount(dir).catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
}

/**
 * Where a rootfs' mountpoint, scaffold, /dev and steps' small files go: the held tmpfs in `parent`
 * (holdScratch), else `fallback`. Each stage makes and removes some forty of these entries; on the
 * store's filesystem each was a journalled create and delete, and their sync calls blocked the
 * main thread behind the builds' fsyncs (issue 16: 2000 stages). The upper and work dirs stay on
 * the store's filesystem: the upper dir becomes the layer by a rename.
 */
async function scratchDir(parent: string, fallback = tmpdir()): Promise<string> {
  const s = scratch.get(parent);
  if (!s?.holders) return fallback;
  s.dir ??= (async () => {
    const dir = tempName(parent, "scratch");
    try {
      await mkdir(dir, { mode: 0o700 });
      await runTool(requireTool("mount"), ["-t", "tmpfs", "-o", `mode=0700,size=${SCRATCH_SIZE}`, "mstage-scratch", dir]);
      return dir;
    } catch {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      return undefined;
    }
  })();
  return (await s.dir) ?? fallback;
}

function makeScaffold(dir: string, extra: string[]): void {
  for (const d of [...SCAFFOLD_DIRS, ...extra.map((p) => p.replace(/^\/+/, ""))]) {
    if (d.split("/").includes("..")) throw new UserError(`mount target ${JSON.stringify("/" + d)} must not contain ".."`);
    mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  }
  chmodSync(join(dir, "tmp"), 0o1777);
  for (const f of SCAFFOLD_FILES) writeFileSync(join(dir, f), "", { mode: 0o644 });
}
