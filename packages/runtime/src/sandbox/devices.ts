// A minimal /dev, built once per mstage process and bind-mounted (recursively, one mount call) into
// every step: a tmpfs with null/zero/full/random/urandom/tty bound from the host, /dev/pts (a new
// devpts instance), /dev/shm and the usual symlinks. Building it per step cost ~15 process spawns.
// It also carries /dev/.mstage: the host's setpriv with its loader and libraries, which switches to a
// step's user after pivot_root has made the host's filesystem unreachable (see setup-script.ts).
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { promisify } from "node:util";
import { UserError } from "@mstage/core";
import { hostPath, requireTool } from "./tools.ts";

const run = promisify(execFile);

const SCRIPT = String.raw`set -e
d=$1
mount -t tmpfs -o nosuid,mode=755,size=65536k tmpfs "$d"
for n in null zero full random urandom tty; do : >"$d/$n"; mount --bind "/dev/$n" "$d/$n"; done
mkdir -m 755 "$d/pts"; mkdir -m 1777 "$d/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$d/pts"
mount -t tmpfs -o nosuid,nodev,noexec,mode=1777 shm "$d/shm"
ln -s pts/ptmx "$d/ptmx"; ln -s /proc/self/fd "$d/fd"
ln -s /proc/self/fd/0 "$d/stdin"; ln -s /proc/self/fd/1 "$d/stdout"; ln -s /proc/self/fd/2 "$d/stderr"
shift
mkdir -m 755 "$d/.mstage" "$d/.mstage/old"
cp "$@" "$d/.mstage/"
`;

/** Where the helper is seen inside a step, and how to run it there (loader, library path, binary). */
export const HELPER_DIR = "/dev/.mstage";

/** Where pivot_root puts the host's root inside a step, until the step's setup detaches it. */
export const OLD_ROOT = "/dev/.mstage/old";

export interface DevTemplate {
  dir: string;
  /** argv prefix that runs the host's setpriv inside the step's root. */
  setpriv: string[];
  /** argv that runs the host's umount right after pivot_root, through OLD_ROOT. */
  umount: string[];
}

/** A binary's loader and libraries, from ldd (part of every glibc system). */
async function helperFiles(binary: string): Promise<{ files: string[]; loader: string }> {
  const { stdout } = await run("ldd", [binary], { env: { PATH: hostPath() } });
  const files = [binary];
  let loader = "";
  for (const line of stdout.split("\n")) {
    const lib = /=>\s*(\/\S+)/.exec(line)?.[1];
    if (lib) files.push(lib);
    else {
      const ld = /^\s*(\/\S*ld-linux\S*|\/\S*ld\.so\S*)\s/.exec(line)?.[1];
      if (ld) loader = ld;
    }
  }
  if (!loader) throw new Error(`cannot find the dynamic loader of ${binary} in: ${stdout}`);
  files.push(loader);
  return { files, loader };
}

let template: Promise<DevTemplate> | undefined;

/** The /dev template (inside mstage's user and mount namespace), made on first use. */
export function devTemplate(): Promise<DevTemplate> {
  template ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "mstage-dev-"));
    process.once("exit", () => {
      try {
        execFileSync(requireTool("umount"), ["-R", "-l", dir], { stdio: "ignore" });
      } catch {
        // already gone with the mount namespace
      }
      rmSync(dir, { recursive: true, force: true });
    });
    const setpriv = requireTool("setpriv");
    let helper: { files: string[]; loader: string };
    let umount: { files: string[]; loader: string };
    try {
      helper = await helperFiles(setpriv);
      umount = await helperFiles(requireTool("umount"));
      await run("/bin/sh", ["-c", SCRIPT, "mstage-dev", dir, ...helper.files], { env: { PATH: hostPath() } });
    } catch (e) {
      template = undefined;
      throw new UserError(`could not build the sandbox's /dev: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`, {
        cause: e,
        detail: "run `mstage doctor`",
      });
    }
    const inStep = (p: string) => `${HELPER_DIR}/${basename(p)}`;
    // Through the old root, absolute symlinks (/lib64/ld-linux…) would resolve in the step's root.
    const old = (p: string) => OLD_ROOT + realpathSync(p);
    const libDirs = [...new Set(umount.files.slice(1, -1).map((f) => old(dirname(f))))].join(":");
    return {
      dir,
      setpriv: [inStep(helper.loader), "--library-path", HELPER_DIR, inStep(setpriv)],
      umount: [old(umount.loader), "--library-path", libDirs, old(umount.files[0])],
    };
  })();
  return template;
}
