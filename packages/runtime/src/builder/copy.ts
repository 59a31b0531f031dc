// Applies a stage's `copy` entries to its mounted root filesystem: host files (exactly the list
// core's walkLocal hashed), files from another stage's result, and inline text. Destinations are
// resolved inside the root, so a symlink in the image never sends a copy out of it.
import { chmod, chown, copyFile, lchown, lstat, mkdir, readdir, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { basename, join, posix, resolve } from "node:path";
import { StageError, walkLocal, type FileOptions, type Source, type Stage } from "@mstage/core";
import { hostPathInRoot, mkdirInRoot } from "../sandbox/paths.ts";

export interface CopyContext {
  stage: Stage;
  projectDir: string;
  /** Runs `fn` with another stage's result mounted read-only. */
  withStageRoot<T>(stage: Stage, fn: (root: string) => Promise<T>): Promise<T>;
  /** The host path of a regular file that another stage's own top layer holds, if it surely is what a mount would show. */
  topLayerFile?(stage: Stage, path: string): Promise<string | undefined>;
}

interface Ids {
  uid: number;
  gid: number;
}

function parseOwner(stage: Stage, owner: string | undefined): Ids {
  if (owner === undefined) return { uid: 0, gid: 0 };
  const m = /^(\d+)(?::(\d+))?$/.exec(owner);
  if (!m) throw new StageError(stage.name, `owner ${JSON.stringify(owner)} must be "uid:gid" numbers, e.g. "1000:1000"`, "copy", stage.definedAt);
  return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
}

/** Copies one `copy` entry into `root` (the stage's merged rootfs). */
export async function applyCopy(root: string, dest: string, source: Source, ctx: CopyContext): Promise<void> {
  const ids = parseOwner(ctx.stage, source.owner);
  const intoDir = dest.endsWith("/");
  switch (source.kind) {
    case "inline": {
      const target = await prepareFileTarget(root, dest, "inline");
      await rm(target, { force: true, recursive: false }).catch(() => undefined);
      await writeFile(target, source.text, { mode: 0o644 });
      await finishFile(target, ids, source.mode ?? 0o644);
      return;
    }
    case "local": {
      const abs = resolve(ctx.projectDir, source.path);
      const st = await stat(abs).catch(() => undefined);
      if (!st) throw new StageError(ctx.stage.name, `local ${source.path} does not exist (looked at ${abs})`, `copy["${dest}"]`, ctx.stage.definedAt);
      const entries = await walkLocal(source, ctx.projectDir);
      if (!st.isDirectory()) {
        const target = await prepareFileTarget(root, intoDir ? posix.join(dest, basename(abs)) : dest, basename(abs));
        await copyOne(abs, target, "file", ids, source);
        return;
      }
      const top = await destDir(root, dest, ids);
      for (const e of entries) {
        if (e.rel === "" || e.rel === ".") continue;
        const target = hostPathInRoot(top, e.rel);
        await copyOne(e.abs, target, e.type, ids, source, e.linkTarget);
      }
      return;
    }
    case "stage-path": {
      const direct = await ctx.topLayerFile?.(source.stage, source.path);
      if (direct) {
        const target = await prepareFileTarget(root, intoDir ? posix.join(dest, basename(source.path)) : dest, basename(source.path));
        await copyOne(direct, target, "file", ids, source);
        return;
      }
      await ctx.withStageRoot(source.stage, async (from) => {
        const abs = hostPathInRoot(from, source.path, { followLast: true });
        const st = await lstat(abs).catch(() => undefined);
        if (!st) {
          throw new StageError(ctx.stage.name, `${source.stage.name}.path("${source.path}") does not exist in stage "${source.stage.name}"'s result`, `copy["${dest}"]`, ctx.stage.definedAt);
        }
        if (!st.isDirectory()) {
          const target = await prepareFileTarget(root, intoDir ? posix.join(dest, basename(source.path)) : dest, basename(source.path));
          await copyOne(abs, target, "file", ids, source);
          return;
        }
        const top = await destDir(root, dest, ids);
        await copyTree(abs, top, ids, source);
      });
      return;
    }
  }
}

/** A directory copy's destination: missing parents are root's, the destination itself gets the owner. */
async function destDir(root: string, dest: string, ids: Ids): Promise<string> {
  const abs = posix.normalize("/" + dest);
  mkdirInRoot(root, posix.dirname(abs), { uid: 0, gid: 0 });
  const top = mkdirInRoot(root, abs, ids).dir;
  await chown(top, ids.uid, ids.gid);
  return top;
}

/** Where a single file goes: an existing directory at `dest` receives it by its own name. */
async function prepareFileTarget(root: string, dest: string, name: string): Promise<string> {
  const parent = posix.dirname(posix.normalize("/" + dest));
  mkdirInRoot(root, parent, { uid: 0, gid: 0 });
  let target = hostPathInRoot(root, dest, { followLast: true });
  const existing = await lstat(target).catch(() => undefined);
  if (existing?.isDirectory()) target = join(target, name);
  return target;
}

async function copyTree(fromDir: string, toDir: string, ids: Ids, o: FileOptions): Promise<void> {
  const names = (await readdir(fromDir)).sort();
  for (const name of names) {
    const src = join(fromDir, name);
    const st = await lstat(src);
    const dst = join(toDir, name);
    if (st.isDirectory()) {
      await copyOne(src, dst, "dir", ids, o);
      await copyTree(src, dst, ids, o);
    } else if (st.isSymbolicLink()) {
      await copyOne(src, dst, "symlink", ids, o, await readlink(src));
    } else if (st.isFile()) {
      await copyOne(src, dst, "file", ids, o);
    }
    // Sockets, fifos and devices are not copied: images get them from their own steps.
  }
}

async function copyOne(src: string, dst: string, type: "file" | "dir" | "symlink", ids: Ids, o: FileOptions, linkTarget?: string): Promise<void> {
  const existing = await lstat(dst).catch(() => undefined);
  if (type === "dir") {
    if (existing && !existing.isDirectory()) await rm(dst, { recursive: true, force: true });
    if (!existing || !existing.isDirectory()) await mkdir(dst, { mode: 0o755 });
    const st = await stat(src);
    await chmod(dst, st.mode & 0o7777);
    await chown(dst, ids.uid, ids.gid);
    return;
  }
  if (existing) await rm(dst, { recursive: true, force: true });
  if (type === "symlink") {
    await symlink(linkTarget ?? (await readlink(src)), dst);
    await lchown(dst, ids.uid, ids.gid);
    return;
  }
  await copyFile(src, dst);
  const st = await stat(src);
  await finishFile(dst, ids, o.mode ?? st.mode & 0o7777);
}

async function finishFile(path: string, ids: Ids, mode: number): Promise<void> {
  await chown(path, ids.uid, ids.gid);
  await chmod(path, mode);
}
