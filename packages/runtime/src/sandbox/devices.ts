// A minimal /dev, built once per mstage process and bind-mounted (recursively, one mount call) into
// every step: a tmpfs with null/zero/full/random/urandom/tty bound from the host, /dev/pts (a new
// devpts instance), /dev/shm and the usual symlinks. Building it per step cost ~15 process spawns.
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { UserError } from "@mstage/core";

const run = promisify(execFile);

const SCRIPT = String.raw`set -e
d=$1
mount -t tmpfs -o nosuid,noexec,mode=755,size=65536k tmpfs "$d"
for n in null zero full random urandom tty; do : >"$d/$n"; mount --bind "/dev/$n" "$d/$n"; done
mkdir -m 755 "$d/pts"; mkdir -m 1777 "$d/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$d/pts"
mount -t tmpfs -o nosuid,nodev,noexec,mode=1777 shm "$d/shm"
ln -s pts/ptmx "$d/ptmx"; ln -s /proc/self/fd "$d/fd"
ln -s /proc/self/fd/0 "$d/stdin"; ln -s /proc/self/fd/1 "$d/stdout"; ln -s /proc/self/fd/2 "$d/stderr"
`;

let template: Promise<string> | undefined;

/** The host path of the /dev template (inside mstage's user and mount namespace). */
export function devTemplate(): Promise<string> {
  template ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "mstage-dev-"));
    process.once("exit", () => {
      try {
        execFileSync("umount", ["-R", "-l", dir], { stdio: "ignore" });
      } catch {
        // already gone with the mount namespace
      }
      rmSync(dir, { recursive: true, force: true });
    });
    try {
      await run("/bin/sh", ["-c", SCRIPT, "mstage-dev", dir]);
    } catch (e) {
      template = undefined;
      throw new UserError(`could not build the sandbox's /dev: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`, {
        cause: e,
        detail: "run `mstage doctor`",
      });
    }
    return dir;
  })();
  return template;
}
