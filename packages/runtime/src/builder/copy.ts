// Applies a stage's `copy` entries to its mounted root filesystem with BuildKit's COPY semantics:
// host files (exactly the list core's walkLocal hashed), files from another stage's result, and
// inline text. Destinations are resolved inside the root (symlinks followed there, never out of
// it); a destination ending in "/" is a directory; a directory source copies its contents and
// leaves an existing destination directory's owner and mode alone; files from another stage keep
// their owner, mode, xattrs and hardlinks unless `owner`/`mode` say otherwise.
import { chmod, chown, copyFile, lchown, link, lstat, mkdir, mkdtemp, readdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, readdirSync, type Stats } from "node:fs";
import { basename, dirname, join, posix, resolve } from "node:path";
import { StageError, globRegExp, isGlob, isUserError, walkLocal, type Source, type SourceInput, type Stage } from "@mstage/core";
import { resolveInRoot } from "../sandbox/paths.ts";
import { resolveOwner } from "../sandbox/passwd.ts";
import { extractArchive } from "./archive.ts";
import { download, urlFileName } from "./download.ts";
import { checkoutGit } from "./git.ts";
import { isOverlayPrivate, readTreeXattrs, writeXattrs } from "../layer/xattr.ts";

export interface CopyContext {
  stage: Stage;
  projectDir: string;
  /** Runs `fn` with another stage's result mounted read-only. */
  withStageRoot<T>(stage: Stage, fn: (root: string) => Promise<T>): Promise<T>;
  /** The host path of a regular file that another stage's own top layer holds, if it surely is what a mount would show. */
  topLayerFile?(stage: Stage, path: string): Promise<string | undefined>;
  /** Things worth telling the user (an xattr the kernel refused). */
  onNote?(message: string): void;
  /** What the plan keyed this copy's source by: a git() source's commit, an unpinned http() source's digest. */
  planned?: SourceInput;
  /** A fresh scratch directory (for a git checkout), removed by the caller's cleanup. */
  tmpDir?(name: string): string;
  signal?: AbortSignal;
}

interface Ids {
  uid: number;
  gid: number;
}

const ROOT: Ids = { uid: 0, gid: 0 };

/** How the entries of one copy get their owner and mode. */
interface Rules {
  /** From `owner`; otherwise `keepOwner` decides. */
  owner?: Ids;
  /** `path()` keeps the owners of the source stage; host and inline files belong to root. */
  keepOwner: boolean;
  mode?: number;
}

const mapped = new Map<string, [number, number][] | null>();

/** When `id` is not among the ids this process's user namespace maps, those ids as text ("0-65535"); else undefined. */
function unmappedIn(kind: "uid" | "gid", id: number): string | undefined {
  if (!mapped.has(kind)) {
    try {
      const lines = readFileSync(`/proc/self/${kind}_map`, "utf8").trim().split("\n");
      const ranges = lines.map((l) => l.trim().split(/\s+/).map(Number)).map(([inside, , count]) => [inside!, count!] as [number, number]);
      const merged: [number, number][] = [];
      for (const [start, count] of ranges.sort((a, b) => a[0] - b[0])) {
        const last = merged.at(-1);
        if (last && last[0] + last[1] === start) last[1] += count;
        else merged.push([start, count]);
      }
      mapped.set(kind, merged);
    } catch {
      mapped.set(kind, null);
    }
  }
  const ranges = mapped.get(kind);
  if (!ranges || ranges.some(([start, count]) => id >= start && id < start + count)) return undefined;
  return ranges.map(([start, count]) => (count === 1 ? `${start}` : `${start}-${start + count - 1}`)).join(", ");
}

/** Copies one `copy` entry into `root` (the stage's merged rootfs). */
export async function applyCopy(root: string, dest: string, source: Source, ctx: CopyContext): Promise<void> {
  const key = `copy["${dest}"]`;
  const fail = (message: string): never => {
    throw new StageError(ctx.stage.name, message, key, ctx.stage.definedAt);
  };
  let owner: Ids | undefined;
  if (source.owner !== undefined) {
    try {
      owner = resolveOwner(root, source.owner);
    } catch (e) {
      if (isUserError(e)) fail(`owner "${source.owner}": ${(e as Error).message}`);
      throw e;
    }
    // An id the build namespace does not map cannot own a file here (chown fails with EINVAL).
    for (const [kind, id] of [["uid", owner!.uid], ["gid", owner!.gid]] as const) {
      const have = unmappedIn(kind, id);
      if (have) fail(`owner "${source.owner}": ${kind} ${id} is not mapped into the build's user namespace (mapped: ${have}); use an id in that range, or give your user a larger range in /etc/sub${kind}`);
    }
  }
  const rules: Rules = { owner, keepOwner: source.kind === "stage-path", mode: source.mode };
  const intoDir = dest.endsWith("/");
  const made = owner ?? ROOT;
  switch (source.kind) {
    case "inline": {
      if (intoDir) fail(`inline() writes one file: give it a file name, not a directory ending in "/"`);
      const target = fileTarget(root, dest, false, "", made, fail);
      await rm(target, { force: true, recursive: true });
      await writeFile(target, source.text, { mode: 0o644 });
      await finish(target, owner ?? ROOT, source.mode ?? 0o644);
      return;
    }
    case "local": {
      let entries;
      try {
        entries = await walkLocal(source, ctx.projectDir);
      } catch (e) {
        if (isUserError(e)) fail(`local ${(e as Error).message}`);
        throw e;
      }
      const tree = new TreeCopy(rules);
      if (entries.length === 1 && entries[0]!.rel === "") {
        const e = entries[0]!;
        await tree.put(e.abs, e.stat ?? (await lstat(e.abs)), fileTarget(root, dest, intoDir, basename(e.abs), made, fail));
        return;
      }
      const top = dirTarget(root, dest, made, fail);
      for (const e of entries) await tree.put(e.abs, e.stat ?? (await lstat(e.abs)), join(top, e.rel), e.linkTarget);
      return;
    }
    case "http": {
      const planned = ctx.planned?.kind === "http" ? ctx.planned.digest : undefined;
      const sha256 = source.sha256 ?? planned;
      if (!sha256) throw new Error(`http(${source.url}) reached the builder without a pinned digest`);
      const target = fileTarget(root, dest, intoDir, urlFileName(source.url), made, fail);
      await rm(target, { force: true, recursive: true });
      try {
        await download(source.url, sha256, target, ctx.signal);
      } catch (e) {
        if (isUserError(e)) fail((e as Error).message);
        throw e;
      }
      // Docker's ADD gives a downloaded file 0600.
      await finish(target, owner ?? ROOT, source.mode ?? 0o600);
      return;
    }
    case "git": {
      const commit = ctx.planned?.kind === "git" ? ctx.planned.commit : undefined;
      if (!commit) throw new Error(`git ${source.url}#${source.ref} reached the builder without a resolved commit`);
      const dir = join(ctx.tmpDir ? ctx.tmpDir("git") : await mkdtemp(join(tmpdir(), "mstage-git-")), "checkout");
      try {
        await checkoutGit({ url: source.url, ref: source.ref, commit, dir, keepGitDir: source.keepGitDir, signal: ctx.signal });
        await new TreeCopy(rules).putTree(dir, dirTarget(root, dest, made, fail));
      } catch (e) {
        if (isUserError(e)) fail((e as Error).message);
        throw e;
      } finally {
        await rm(dirname(dir), { recursive: true, force: true });
      }
      return;
    }
    case "archive": {
      const inner = source.source;
      const top = dirTarget(root, dest, ROOT, fail);
      const what = inner.kind === "local" ? `archive ${inner.path}` : `archive ${inner.stage.name}.path("${inner.path}")`;
      const extract = async (file: string) => {
        const st = await lstat(file).catch(() => undefined);
        if (!st?.isFile()) fail(`${what} is not a file`);
        try {
          await extractArchive(file, top, what, ctx.onNote);
        } catch (e) {
          if (isUserError(e)) fail((e as Error).message);
          throw e;
        }
      };
      if (inner.kind === "local") return extract(resolve(ctx.projectDir, inner.path));
      const direct = await ctx.topLayerFile?.(inner.stage, inner.path);
      if (direct) return extract(direct);
      await ctx.withStageRoot(inner.stage, async (from) => {
        const r = resolveInRoot(from, inner.path);
        if (r.missing.length) fail(`${inner.stage.name}.path("${inner.path}") does not exist in stage "${inner.stage.name}"'s result`);
        await extract(r.existing);
      });
      return;
    }
    case "stage-path": {
      if (isGlob(source.path)) return copyStageGlob(root, dest, source, rules, made, ctx, fail);
      const direct = await ctx.topLayerFile?.(source.stage, source.path);
      const missing = () => fail(`${source.stage.name}.path("${source.path}") does not exist in stage "${source.stage.name}"'s result`);
      const copyFrom = async (abs: string) => {
        const st = await lstat(abs).catch(() => undefined);
        if (!st) return missing();
        const tree = new TreeCopy(rules);
        if (!st.isDirectory()) {
          const target = fileTarget(root, dest, intoDir, basename(source.path), made, fail);
          await tree.put(abs, st, target);
          await copyXattrs(dirname(abs), basename(abs), dirname(target), basename(target), ctx);
          return;
        }
        const top = dirTarget(root, dest, made, fail);
        await tree.putTree(abs, top);
        await copyXattrs(abs, ".", top, ".", ctx, true);
      };
      if (direct) return copyFrom(direct);
      await ctx.withStageRoot(source.stage, async (from) => {
        const r = resolveInRoot(from, source.path);
        if (r.missing.length) return missing();
        await copyFrom(r.existing);
      });
      return;
    }
  }
}

/**
 * Docker's `COPY --from=stage /src/*.so /lib/`, as for local wildcards: every match (Go's
 * filepath.Match per name, sorted) is a source of its own; a single one is as if it were written
 * out; with several, each file goes in by its name and each directory's contents are copied.
 */
async function copyStageGlob(root: string, dest: string, source: Source & { kind: "stage-path" }, rules: Rules, made: Ids, ctx: CopyContext, fail: (m: string) => never): Promise<void> {
  const what = `${source.stage.name}.path("${source.path}")`;
  await ctx.withStageRoot(source.stage, async (from) => {
    const matches = globInRoot(from, source.path);
    if (matches.length === 0) fail(`${what}: no files match in stage "${source.stage.name}"'s result (Docker's COPY fails the same way)`);
    const tree = new TreeCopy(rules);
    const several = matches.length > 1;
    if (several && !dest.endsWith("/")) fail(`${what} matches ${matches.length} files: the destination must be a directory ending in "/"`);
    for (const m of matches) {
      const abs = resolveInRoot(from, m).existing;
      const st = await lstat(abs);
      if (st.isDirectory()) {
        const top = dirTarget(root, dest, made, fail);
        await tree.putTree(abs, top);
        await copyXattrs(abs, ".", top, ".", ctx, true);
      } else {
        const target = fileTarget(root, dest, dest.endsWith("/"), posix.basename(m), made, fail);
        await tree.put(abs, st, target);
        await copyXattrs(dirname(abs), basename(abs), dirname(target), basename(target), ctx);
      }
    }
  });
}

/** The paths in `root` (as paths inside it) that a wildcard path matches, symlinks followed inside the root. */
function globInRoot(root: string, pattern: string): string[] {
  let found = ["/"];
  for (const part of pattern.split("/").filter(Boolean)) {
    const next: string[] = [];
    for (const p of found) {
      if (!isGlob(part)) {
        next.push(posix.join(p, part));
        continue;
      }
      const r = resolveInRoot(root, p);
      if (r.missing.length) continue;
      let names: string[];
      try {
        names = readdirSync(r.existing).sort();
      } catch {
        continue;
      }
      const re = globRegExp(part);
      for (const n of names) if (re.test(n)) next.push(posix.join(p, n));
    }
    found = next.filter((p) => resolveInRoot(root, p).missing.length === 0);
  }
  return found;
}

/**
 * Where a single file goes: `dest` itself, or `dest/name` when `dest` ends in "/" or is an existing
 * directory. Symlinks are followed inside the root, a dangling one to where it points; missing
 * parent directories are created (0755, owned by `made`).
 */
function fileTarget(root: string, dest: string, intoDir: boolean, name: string, made: Ids, fail: (m: string) => never): string {
  if (intoDir) return join(dirTarget(root, dest, made, fail), name);
  const r = resolveInRoot(root, dest);
  if (r.missing.length === 0) {
    const st = lstatSync(r.existing);
    if (st.isDirectory()) {
      if (name === "") fail(`${dest} is a directory in the image: give the file a name`);
      return join(r.existing, name);
    }
    return r.existing;
  }
  const parent = createDirs(r.existing, r.missing.slice(0, -1), made, dest, fail);
  return join(parent, r.missing.at(-1)!);
}

/** The directory a directory source (or a destination ending in "/") goes into, created when missing. */
function dirTarget(root: string, dest: string, made: Ids, fail: (m: string) => never): string {
  const r = resolveInRoot(root, dest);
  if (r.missing.length === 0 && !lstatSync(r.existing).isDirectory()) fail(`${dest} exists in the image and is not a directory`);
  return createDirs(r.existing, r.missing, made, dest, fail);
}

function createDirs(existing: string, names: string[], made: Ids, dest: string, fail: (m: string) => never): string {
  let dir = existing;
  if (!lstatSync(dir).isDirectory()) fail(`a parent of ${dest} exists in the image and is not a directory`);
  for (const name of names) {
    dir = join(dir, name);
    mkdirSync(dir);
    chownSync(dir, made.uid, made.gid);
    chmodSync(dir, 0o755);
  }
  return dir;
}

/** Copies entries one by one, keeping hardlinks between the files of one copy as hardlinks. */
class TreeCopy {
  /** dev:ino of a source file with several links → the first destination written for it. */
  private readonly links = new Map<string, string>();
  constructor(private readonly rules: Rules) {}

  private ids(st: Stats): Ids {
    return this.rules.owner ?? (this.rules.keepOwner ? { uid: st.uid, gid: st.gid } : ROOT);
  }

  /** The contents of `fromDir` into the existing directory `toDir`, depth first in name order. */
  async putTree(fromDir: string, toDir: string): Promise<void> {
    for (const name of (await readdir(fromDir)).sort()) {
      const src = join(fromDir, name);
      const st = await lstat(src);
      await this.put(src, st, join(toDir, name));
      if (st.isDirectory()) await this.putTree(src, join(toDir, name));
    }
  }

  async put(src: string, st: Stats, dst: string, linkTarget?: string): Promise<void> {
    const ids = this.ids(st);
    const existing = await lstat(dst).catch(() => undefined);
    if (st.isDirectory()) {
      if (existing && !existing.isDirectory()) await rm(dst, { recursive: true, force: true });
      if (!existing?.isDirectory()) await mkdir(dst);
      await finish(dst, ids, this.rules.mode ?? st.mode & 0o7777);
      return;
    }
    if (!st.isFile() && !st.isSymbolicLink()) return; // sockets, fifos and devices: images get them from their own steps
    if (existing) await rm(dst, { recursive: true, force: true });
    if (st.isSymbolicLink()) {
      await symlink(linkTarget ?? (await readlink(src)), dst);
      await lchown(dst, ids.uid, ids.gid);
      return;
    }
    const id = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1 ? this.links.get(id) : undefined;
    if (first) {
      await link(first, dst);
      return;
    }
    await copyFile(src, dst);
    await finish(dst, ids, this.rules.mode ?? st.mode & 0o7777);
    if (st.nlink > 1) this.links.set(id, dst);
  }
}

/** Owner first: chown clears setuid/setgid, which chmod then sets again. */
async function finish(path: string, ids: Ids, mode: number): Promise<void> {
  await chown(path, ids.uid, ids.gid);
  await chmod(path, mode);
}

/**
 * Copies the xattrs (file capabilities, user.*) of `fromDir/name` (and below it) onto the same
 * relative paths under `toDir/toName`, after owners and modes are final: a chown drops
 * `security.capability`. `whole` copies every entry below and includes the top directory's own
 * attributes only when it was copied too (never for an existing destination directory).
 */
async function copyXattrs(fromDir: string, name: string, toDir: string, toName: string, ctx: CopyContext, whole = false): Promise<void> {
  const found = await readTreeXattrs(fromDir, name);
  const items: Array<{ rel: string; name: string; value: Buffer }> = [];
  for (const [rel, attrs] of found) {
    if (whole && rel === "") continue;
    const target = whole ? rel : toName;
    for (const [n, value] of attrs) if (!isOverlayPrivate(n)) items.push({ rel: target, name: n, value });
  }
  const refused = await writeXattrs(toDir, items);
  for (const m of refused) ctx.onNote?.(`xattr not kept: ${m}`);
}
