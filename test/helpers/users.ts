// Runs test commands as each user the sandbox must work for: the current user (root in CI) and the
// unprivileged `mstage-test`, which .ci/setup creates with the subordinate range 200000:65536.
import { spawn, spawnSync } from "node:child_process";

export const TEST_USER = "mstage-test";
/** .ci/setup makes this one without a subordinate id range. */
export const NORANGE_USER = "mstage-norange";

export interface TestUser {
  name: string;
  /** Why tests cannot run as this user here; tests must t.skip(skip) rather than pass silently. */
  skip?: string;
}

let cached: TestUser[] | undefined;

/** The users every sandbox test runs as: whoever runs the tests, and mstage-test when possible. */
export function testUsers(): TestUser[] {
  if (cached) return cached;
  const me = process.getuid!() === 0 ? "root" : (process.env.USER ?? String(process.getuid!()));
  let skip: string | undefined;
  if (process.getuid!() !== 0) skip = `tests run as ${me}, not root, so they cannot switch to ${TEST_USER}`;
  else if (spawnSync("id", [TEST_USER]).status !== 0) skip = `user ${TEST_USER} does not exist: run .ci/setup (it creates it with a subordinate id range)`;
  cached = [{ name: me }, { name: TEST_USER, skip }];
  return cached;
}

/** The user without a subordinate range, or why tests cannot run as it here. */
export function noRangeUser(): TestUser {
  if (process.getuid!() !== 0) return { name: NORANGE_USER, skip: `tests run as ${testUsers()[0].name}, not root, so they cannot switch to ${NORANGE_USER}` };
  if (spawnSync("id", [NORANGE_USER]).status !== 0) return { name: NORANGE_USER, skip: `user ${NORANGE_USER} does not exist: run .ci/setup (it creates it without a subordinate id range)` };
  const has = (f: string) => spawnSync("grep", ["-q", `^${NORANGE_USER}:`, f]).status === 0;
  if (has("/etc/subuid") || has("/etc/subgid")) return { name: NORANGE_USER, skip: `${NORANGE_USER} has a subordinate range here; .ci/setup removes it` };
  return { name: NORANGE_USER };
}

/** argv that runs `argv` as `user` (unchanged for the current user), with a clean environment. */
export function asUser(user: string, argv: string[], env: Record<string, string> = {}): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  const base = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ...env };
  if (user === testUsers()[0].name) return { cmd: argv[0], args: argv.slice(1), env: { ...process.env, ...env } };
  const home = user === TEST_USER || user === NORANGE_USER ? `/home/${user}` : "/";
  return {
    cmd: "setpriv",
    args: [`--reuid=${user}`, `--regid=${user}`, "--init-groups", "--", "env", "-i", ...Object.entries({ ...base, HOME: home, USER: user, LOGNAME: user }).map(([k, v]) => `${k}=${v}`), ...argv],
    env: {},
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `argv` as `user` and collects its output. */
export function runAs(user: string, argv: string[], opts: { cwd?: string; env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const c = asUser(user, argv, opts.env);
  return new Promise((resolve, reject) => {
    const child = spawn(c.cmd, c.args, { cwd: opts.cwd, env: c.env, stdio: ["pipe", "pipe", "pipe"], timeout: opts.timeoutMs });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.stdin.end(opts.input ?? "");
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
