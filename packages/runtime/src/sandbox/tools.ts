// Host tools the sandbox composes (util-linux, shadow's uidmap). Looked up once, by absolute path,
// so a step's PATH or a changed root can never pick a different binary.
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { UserError } from "@mstage/core";

const SEARCH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
const found = new Map<string, string | undefined>();

/** Absolute path of a host tool, or undefined when it is not installed. */
export function findTool(name: string): string | undefined {
  if (found.has(name)) return found.get(name);
  let hit: string | undefined;
  const dirs = [...(process.env.PATH ?? "").split(":").filter((d) => d.startsWith("/")), ...SEARCH];
  for (const dir of dirs) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      hit = join(dir, name);
      break;
    } catch {
      // not here
    }
  }
  found.set(name, hit);
  return hit;
}

/**
 * PATH for the host tools the sandbox runs (setup scripts, probes): the caller's PATH plus the system
 * dirs, so that /usr/sbin tools (pivot_root, ip) are found even from a user's narrow PATH.
 */
export function hostPath(): string {
  const dirs = (process.env.PATH ?? "").split(":").filter((d) => d.startsWith("/"));
  for (const d of SEARCH) if (!dirs.includes(d)) dirs.push(d);
  return dirs.join(":");
}

/** Which Debian package provides each tool, for the error that says what to install. */
const PACKAGE: Record<string, string> = {
  unshare: "util-linux",
  setpriv: "util-linux",
  mount: "mount",
  umount: "mount",
  newuidmap: "uidmap",
  newgidmap: "uidmap",
  env: "coreutils",
  ip: "iproute2",
};

export function requireTool(name: string): string {
  const p = findTool(name);
  if (!p) {
    const pkg = PACKAGE[name] ?? name;
    throw new UserError(`"${name}" is not installed; mstage's sandbox needs it. Install it with: sudo apt-get install ${pkg}`);
  }
  return p;
}
