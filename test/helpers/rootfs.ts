// Base root filesystems for tests, made offline or once per machine and cached:
// a busybox-static rootfs (instant) and a Debian bookworm minbase (mmdebstrap, ~15-20 s once).
// Call these inside mstage's user namespace (a harness that ran reexecInUserNamespace), so the files
// belong to the namespace's users; each host user gets its own cache.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, copyFileSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The host uid behind this process (differs from getuid() inside a user namespace). */
export function hostUid(): number {
  const line = readFileSync("/proc/self/uid_map", "utf8").trim().split("\n")[0].trim().split(/\s+/);
  return line[0] === "0" ? Number(line[1]) : process.getuid!();
}

/**
 * Per host user, so root's and mstage-test's caches never mix owners. It outlives a run's own temp
 * directory (scripts/test.mjs sets MSTAGE_TEST_CACHE_ROOT to the real one).
 */
export function testCacheDir(): string {
  const dir = testCachePath(hostUid());
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Where host user `uid`'s test cache is (MSTAGE_TEST_CACHE overrides it for this user only). */
export function testCachePath(uid: number | string): string {
  if (process.env.MSTAGE_TEST_CACHE && Number(uid) === hostUid()) return process.env.MSTAGE_TEST_CACHE;
  return join(process.env.MSTAGE_TEST_CACHE_ROOT ?? tmpdir(), `mstage-test-cache-${uid}`);
}

/**
 * A store kept between runs in the test cache, for projects on a plain `debian({ suite: "bookworm" })`
 * (the init starter's base): only the first run on a machine pays for making it (about a minute).
 */
export function debianStore(): string {
  const dir = join(testCacheDir(), "package-store");
  mkdirSync(dir, { recursive: true });
  return dir;
}

const APPLETS = ["sh", "ls", "cat", "echo", "id", "sleep", "mkdir", "rm", "touch", "chown", "chmod", "wget", "ps", "env", "pwd", "grep", "find", "stat", "ln", "true", "false", "test", "nslookup", "head", "wc", "sha256sum", "cp", "mv"];

/** A tiny rootfs: /bin/busybox (static) with applet links, /etc/passwd with root and nobody. */
export function busyboxRootfs(): string {
  const dir = join(testCacheDir(), "busybox-rootfs");
  if (existsSync(`${dir}.complete`)) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  for (const d of ["bin", "etc", "tmp", "root"]) mkdirSync(join(tmp, d), { recursive: true });
  chmodSync(join(tmp, "tmp"), 0o1777);
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (!busybox) throw new Error("busybox-static is not installed: apt-get install busybox-static");
  copyFileSync(busybox, join(tmp, "bin/busybox"));
  chmodSync(join(tmp, "bin/busybox"), 0o755);
  for (const a of APPLETS) symlinkSync("busybox", join(tmp, "bin", a));
  writeFileSync(join(tmp, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000::/home/builder:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n");
  writeFileSync(join(tmp, "etc/group"), "root:x:0:\nbuilder:x:1000:\nnogroup:x:65534:\n");
  try {
    renameSync(tmp, dir);
    writeFileSync(`${dir}.complete`, "");
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another test made it first
  }
  return dir;
}

/** A build of the minbase takes ~20 s; a lock this old belongs to a run that died. */
const STALE_LOCK_MS = 10 * 60_000;

/** Whether the lock dir's owner is gone: its pid (same pid namespace) is dead, or the lock is stale. */
export function lockAbandoned(lock: string): boolean {
  let age: number;
  try {
    age = Date.now() - statSync(lock).mtimeMs;
  } catch {
    return false; // released meanwhile: just try again
  }
  if (age > STALE_LOCK_MS) return true;
  let owner: { pid: number; ns: string } | undefined;
  try {
    owner = JSON.parse(readFileSync(join(lock, "owner"), "utf8"));
  } catch {
    // The owner writes the file right after mkdir; none after a minute means it died in between.
    return age > 60_000;
  }
  if (owner!.ns !== pidNamespace()) return false;
  try {
    process.kill(owner!.pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ESRCH";
  }
}

function pidNamespace(): string {
  try {
    return readlinkSync("/proc/self/ns/pid");
  } catch {
    return "";
  }
}

/**
 * A Debian bookworm minbase (`mmdebstrap --mode=root`, which works as root of a user namespace).
 * Made once per host user and reused by later runs; concurrent callers wait for one build, and a
 * lock left by a run that died is taken over rather than waited on forever.
 */
export function debianMinbase(): string {
  const dir = join(testCacheDir(), "debian-bookworm-minbase");
  const lock = `${dir}.lock`;
  const deadline = Date.now() + 2 * STALE_LOCK_MS;
  for (;;) {
    if (existsSync(`${dir}.complete`)) return dir;
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "owner"), JSON.stringify({ pid: process.pid, ns: pidNamespace() }));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (lockAbandoned(lock)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${lock} is still held after ${(2 * STALE_LOCK_MS) / 60_000} minutes; remove it if no test run is making the Debian rootfs`);
      spawnSync("sleep", ["1"]);
    }
  }
  try {
    if (existsSync(`${dir}.complete`)) return dir;
    rmSync(dir, { recursive: true, force: true });
    const tmp = `${dir}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    execFileSync("mmdebstrap", ["--mode=root", "--variant=minbase", "--skip=output/dev", "--quiet", "bookworm", tmp, "http://deb.debian.org/debian"], { stdio: ["ignore", "ignore", "pipe"] });
    renameSync(tmp, dir);
    writeFileSync(`${dir}.complete`, "");
    return dir;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
