// Resolves a path inside a root filesystem the way the container would see it: symlinks are
// followed relative to the root, never out of it (an absolute link target or `..` stays inside).
import { lstat, readlink, mkdir, chown } from "node:fs/promises";
import { join, posix } from "node:path";

const MAX_LINKS = 40;

/**
 * The host path of `path` inside `root`, following symlinks in every component but the last
 * (`followLast` follows that one too). Missing components are allowed: the result is where they
 * would be created.
 */
export async function resolveInRoot(root: string, path: string, o: { followLast?: boolean } = {}): Promise<string> {
  let pending = splitPath(path);
  const done: string[] = [];
  let links = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === "..") {
      done.pop();
      continue;
    }
    const candidate = join(root, ...done, part);
    const last = pending.length === 0;
    if (!last || o.followLast) {
      const st = await lstat(candidate).catch(() => undefined);
      if (st?.isSymbolicLink()) {
        if (++links > MAX_LINKS) throw new Error(`too many levels of symbolic links resolving ${path}`);
        const target = await readlink(candidate);
        if (target.startsWith("/")) done.length = 0;
        pending = [...splitPath(target), ...pending];
        continue;
      }
    }
    done.push(part);
  }
  return join(root, ...done);
}

function splitPath(p: string): string[] {
  return posix
    .normalize("/" + p)
    .split("/")
    .filter((s) => s !== "" && s !== ".");
}

/**
 * Creates the directories of `path` (inside `root`) that do not exist yet, owned by uid:gid with
 * mode 0755, like `COPY` and `WORKDIR` do. Returns the host path of `path` itself.
 */
export async function mkdirInRoot(root: string, path: string, uid = 0, gid = 0): Promise<string> {
  const parts = splitPath(path);
  let current = "/";
  for (const part of parts) {
    const next = posix.join(current, part);
    const host = await resolveInRoot(root, next, { followLast: true });
    const st = await lstat(host).catch(() => undefined);
    if (!st) {
      await mkdir(host, { mode: 0o755 });
      await chown(host, uid, gid);
    } else if (!st.isDirectory()) {
      throw new Error(`${next} exists and is not a directory`);
    }
    current = next;
  }
  return resolveInRoot(root, path, { followLast: true });
}
