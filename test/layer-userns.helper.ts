// Runs a test script inside mstage's own user namespace (the way `mstage up` runs its store and
// layer work), as root or as the unprivileged test user, and hands back what it printed.
//   node --import tsx test/layer-userns.helper.ts SCRIPT ARGS…   (re-executes itself inside)
import { spawnSync } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { reexecInUserNamespace } from "../packages/runtime/src/sandbox/userns.ts";
import { testCachePath } from "./helpers/rootfs.ts";

const self = new URL(import.meta.url).pathname;
const root = resolve(new URL("..", import.meta.url).pathname);

export interface ScriptRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Whether the unprivileged test user (made by .ci/setup) exists here; a reason to skip if not. */
export function testUserMissing(): string | undefined {
  if (process.getuid?.() !== 0) return "not running as root, cannot switch to mstage-test";
  const r = spawnSync("id", ["-u", "mstage-test"]);
  return r.status === 0 ? undefined : "user mstage-test does not exist (run .ci/setup)";
}

/**
 * Runs `script` (a .ts file) inside a user namespace, as root or as mstage-test, with a fresh work
 * dir (not yet created) as its first argument, then `args`. The caller removes `tmp`.
 */
export function runInUserNamespace(script: string, args: string[], as: "invoker" | "mstage-test" = "invoker"): ScriptRun & { tmp: string } {
  const tmp = mkdtempSync(join(tmpdir(), "mstage-userns-"));
  const node = [process.execPath, "--import", "tsx", self, resolve(script), join(tmp, "work"), ...args];
  let cmd = node;
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (as === "mstage-test") {
    const uid = Number(spawnSync("id", ["-u", "mstage-test"]).stdout.toString());
    const gid = Number(spawnSync("id", ["-g", "mstage-test"]).stdout.toString());
    chownSync(tmp, uid, gid);
    cmd = ["setpriv", "--reuid", "mstage-test", "--regid", "mstage-test", "--init-groups", ...node];
    // Its own temp dir, but the per-user rootfs cache of test/helpers/rootfs.ts survives the run.
    Object.assign(env, { HOME: tmp, USER: "mstage-test", TMPDIR: tmp, MSTAGE_TEST_CACHE: process.env.MSTAGE_TEST_CACHE_MSTAGE_TEST ?? testCachePath(uid) });
    delete env.MSTAGE_TEST_CACHE_MSTAGE_TEST;
  }
  const r = spawnSync(cmd[0], cmd.slice(1), { cwd: root, env, encoding: "utf8", maxBuffer: 64 << 20, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : ""), tmp };
}

/** Why a script cannot run as `as` here (the test user is missing), or undefined when it can. */
export function userMissing(as: "invoker" | "mstage-test"): string | undefined {
  return as === "mstage-test" ? testUserMissing() : undefined;
}

/** runInUserNamespace, handing the run to `check` and removing its temp dir afterwards. */
export function checkInUserNamespace(script: string, args: string[], as: "invoker" | "mstage-test", check: (r: ScriptRun & { tmp: string }) => void): void {
  const r = runInUserNamespace(script, args, as);
  try {
    check(r);
  } finally {
    rmSync(r.tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] === self) {
  await reexecInUserNamespace();
  const [script, ...rest] = process.argv.slice(2);
  process.argv = [process.argv[0], script, ...rest];
  await import(pathToFileURL(script).href);
}
