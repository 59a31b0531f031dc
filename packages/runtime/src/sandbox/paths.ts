// Resolves paths inside a rootfs the way the kernel would after chroot: symlinks (absolute or
// relative) and `..` never lead outside the root. The one place mstage turns an image path into a
// host path, for the sandbox (mount points, workdir, /etc/passwd) and the builder (copy targets,
// files read from another stage), so following an image's symlink can never touch the host.
import { chmodSync, chownSync, lstatSync, mkdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";

export interface InRoot {
  /** Host path of the deepest existing component, symlinks resolved within the root. */
  existing: string;
  /** Components below `existing` that do not exist yet (plain names, no symlinks involved). */
  missing: string[];
}

const MAX_LINKS = 40;

function split(path: string): string[] {
  return path.split("/").filter((c) => c && c !== ".");
}

/** Resolves `path` (absolute inside the image) against `root`, following every symlink in it. */
export function resolveInRoot(root: string, path: string): InRoot {
  const todo = split(path);
  const done: string[] = [];
  let links = 0;
  while (todo.length) {
    const name = todo.shift()!;
    if (name === "..") {
      done.pop();
      continue;
    }
    const host = join(root, ...done, name);
    let st;
    try {
      st = lstatSync(host);
    } catch {
      // Below a missing name there is nothing to follow: the rest are plain names, and a `..`
      // cancels the name before it. Once all are cancelled we are back in existing directories,
      // where the rest is resolved (symlinks and all) again.
      const missing = [name];
      while (todo.length && missing.length) {
        const c = todo.shift()!;
        if (c === "..") missing.pop();
        else missing.push(c);
      }
      if (missing.length === 0) continue;
      return { existing: join(root, ...done), missing };
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new Error(`too many levels of symbolic links resolving ${path} in the rootfs`);
      const target = readlinkSync(host);
      if (target.startsWith("/")) done.length = 0;
      todo.unshift(...split(target));
      continue;
    }
    done.push(name);
  }
  return { existing: join(root, ...done), missing: [] };
}

/** The host path of `path` inside `root`, or undefined when it does not exist. */
export function existingInRoot(root: string, path: string): string | undefined {
  const r = resolveInRoot(root, path);
  return r.missing.length ? undefined : r.existing;
}

/**
 * Where `path` is (or would be created) inside `root`. Symlinks in the parent directories are
 * followed within the root; the last component is followed only with `followLast`, so a copy
 * replaces a symlink at its destination rather than writing through it.
 */
export function hostPathInRoot(root: string, path: string, o: { followLast?: boolean } = {}): string {
  const parts = split(path);
  const last = parts.at(-1);
  if (o.followLast || last === undefined || last === "..") {
    const r = resolveInRoot(root, path);
    return join(r.existing, ...r.missing);
  }
  const parent = resolveInRoot(root, "/" + parts.slice(0, -1).join("/"));
  return join(parent.existing, ...parent.missing, last);
}

/**
 * Creates directory `path` inside `root` like `mkdir -p` (mode 0755 whatever the umask, owned by
 * `owner` when given, as COPY and WORKDIR do) and returns its host path and the host paths it
 * created, outermost first.
 */
export function mkdirInRoot(root: string, path: string, owner?: { uid: number; gid: number }): { dir: string; created: string[] } {
  const r = resolveInRoot(root, path);
  let dir = r.existing;
  if (!r.missing.length && !lstatSync(dir).isDirectory()) throw new Error(`${path} exists and is not a directory`);
  const created: string[] = [];
  for (const name of r.missing) {
    dir = join(dir, name);
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    if (owner) chownSync(dir, owner.uid, owner.gid);
    created.push(dir);
  }
  return { dir, created };
}
