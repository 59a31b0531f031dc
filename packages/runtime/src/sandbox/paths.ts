// Resolves paths inside a rootfs the way the kernel would after chroot: symlinks (absolute or
// relative) and `..` never lead outside the root. Used before anything is mounted or created in a
// rootfs from the host side, where following an image's symlink would touch the host.
import { lstatSync, mkdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";

export interface InRoot {
  /** Host path of the deepest existing component, symlinks resolved within the root. */
  existing: string;
  /** Components below `existing` that do not exist yet (plain names, no symlinks involved). */
  missing: string[];
}

const MAX_LINKS = 40;

/** Resolves `path` (absolute inside the image) against `root`. */
export function resolveInRoot(root: string, path: string): InRoot {
  const todo = path.split("/").filter((c) => c && c !== ".");
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
      return { existing: join(root, ...done), missing: [name, ...todo].filter((c) => c !== "..") };
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new Error(`too many levels of symbolic links resolving ${path} in the rootfs`);
      const target = readlinkSync(host);
      if (target.startsWith("/")) done.length = 0;
      todo.unshift(...target.split("/").filter((c) => c && c !== "."));
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
 * Creates directory `path` inside `root` (like mkdir -p, mode 0755) and returns its host path and
 * the host paths it created, outermost first.
 */
export function mkdirInRoot(root: string, path: string): { dir: string; created: string[] } {
  const r = resolveInRoot(root, path);
  let dir = r.existing;
  const created: string[] = [];
  for (const name of r.missing) {
    dir = join(dir, name);
    mkdirSync(dir, { mode: 0o755 });
    created.push(dir);
  }
  return { dir, created };
}
