// Runs one `run` step in its sandbox: new pid/mount/ipc/uts namespaces (and net for
// `network: "none"`) inside mstage's user namespace, pivoted into the stage's mounted rootfs, with
// the capabilities and /proc that containment.ts allows.
import { spawn } from "node:child_process";
import { lstatSync, mkdirSync, mkdtempSync, rmSync, rmdirSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { constants, hostname } from "node:os";
import { dirname, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { UserError } from "@mstage/core";
import { mkdirInRoot, resolveInRoot } from "./paths.ts";
import { resolveUser } from "./passwd.ts";
import { SETUP_SCRIPT } from "./setup-script.ts";
import { findTool, hostPath, requireTool } from "./tools.ts";
import { DEFAULT_PATH } from "../oci/config.ts";
import { devTemplate } from "./devices.ts";
import { capabilityOptions, procMasksHere, sysMasksHere, type Mask } from "./containment.ts";
import { fstabLine } from "./fstab.ts";
import { launchStep } from "./step-launcher.ts";
import { addRangeCommand } from "./subid.ts";
import { STEP_HOSTNAME, inUserNamespace, invokingUser, userNamespaceKind } from "./userns.ts";

export interface StepBind {
  /** Absolute path inside the rootfs. */
  target: string;
  /** Absolute host path (a file or a directory). */
  host: string;
  readonly: boolean;
}

export interface StepCache {
  target: string;
  /** Persistent host directory (under the store), mounted read-write. */
  dir: string;
}

export interface StepSecret {
  /** Mounted at /run/secrets/<id>. */
  id: string;
  data: Uint8Array;
}

export interface RunStepOptions {
  /** The mounted rootfs (the `merged` dir from withRootfs). */
  rootfs: string;
  /** The command, e.g. `["/bin/sh", "-c", script]`; argv[0] is looked up in the step's PATH. */
  argv: string[];
  /** The step's whole environment (nothing from mstage's own leaks in). PATH and HOME get defaults. */
  env: Record<string, string>;
  /** Working directory inside the rootfs, created if missing. Default "/". */
  workdir?: string;
  /** "name", "uid", "name:group" or "uid:gid", resolved against the rootfs' /etc/passwd. Default root. */
  user?: string;
  network: "host" | "none";
  binds?: StepBind[];
  caches?: StepCache[];
  /** Empty tmpfs mounts at these paths inside the rootfs (BuildKit's `--mount=type=tmpfs`). */
  tmpfs?: string[];
  secrets?: StepSecret[];
  /** Aborting kills the step's whole process tree; runStep then rejects with the signal's reason. */
  signal?: AbortSignal;
  onOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
  /**
   * For `mstage shell`: the step uses mstage's own stdin/stdout/stderr (onOutput is not called), and
   * SIGINT (Ctrl-C) is left to the step while it runs; abort with `signal` or SIGTERM.
   */
  tty?: boolean;
  /** Host name inside the step. Default "mstage". */
  hostname?: string;
}

export interface StepResult {
  /** The step's exit code; 128+N when it died of signal N. */
  exitCode: number;
}

const NONE_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** What a step mounts (an fstab, see fstab.ts), with targets resolved inside the rootfs, and what had to be created for it. */
class MountPlan {
  readonly fstab: string[] = [];
  /** Setup operations after the mounts (see setup-script.ts). */
  readonly ops: string[] = [];
  /** Host paths created in the rootfs as mountpoints, removed again after the step. */
  readonly created: string[] = [];
  constructor(private readonly root: string) {}

  /** The host path of `target` inside the rootfs, created (as a dir or an empty file) when missing. */
  target(target: string, kind: "dir" | "file"): string {
    const r = resolveInRoot(this.root, target);
    let p = r.existing;
    r.missing.forEach((name, i) => {
      p = join(p, name);
      if (kind === "file" && i === r.missing.length - 1) writeFileSync(p, "", { mode: 0o644 });
      else mkdirSync(p, { mode: 0o755 });
      this.created.push(p);
    });
    return p;
  }

  mount(source: string, target: string, type: string, options: string): void {
    this.fstab.push(fstabLine(source, target, type, options));
  }

  bind(source: string, target: string, readonly: boolean): void {
    this.mount(source, target, "none", readonly ? "bind,ro" : "bind");
  }

  /** runc's read-only paths and masks below a /proc or /sys mounted at `dir` (host path). */
  harden(dir: string, masks: Mask[]): void {
    for (const m of masks) {
      const p = join(dir, m.path);
      if (m.kind === "readonly") this.bind(p, p, true);
      else if (m.kind === "file") this.bind("/dev/null", p, true);
      else this.mount("tmpfs", p, "tmpfs", "ro,nosuid,nodev,noexec");
    }
  }

  cleanUp(): void {
    for (const p of this.created.reverse()) {
      try {
        if (lstatSync(p).isDirectory()) rmdirSync(p);
        else unlinkSync(p);
      } catch {
        // the step put something there: it is the step's change now
      }
    }
  }
}

/**
 * Runs `argv` in the sandbox and resolves with its exit code. Must run inside mstage's user namespace
 * (see reexecInUserNamespace) with `rootfs` mounted by withRootfs. Nothing of the sandbox's own
 * (mountpoints, resolv.conf, hosts, secrets) is left in the rootfs afterwards.
 */
export async function runStep(opts: RunStepOptions): Promise<StepResult> {
  opts.signal?.throwIfAborted();
  if (!inUserNamespace()) throw new Error("runStep must run inside mstage's user namespace: call reexecInUserNamespace() first");
  const root = opts.rootfs;
  const user = opts.user ? resolveUser(root, opts.user) : { uid: 0, gid: 0, home: "/root", groups: [] };
  if (userNamespaceKind() === "single" && (user.uid !== 0 || user.gid !== 0)) {
    const who = invokingUser();
    throw new UserError(`cannot run as user "${opts.user}" (uid ${user.uid}, gid ${user.gid}): ${who} has no subordinate id range, so only root exists in the build namespace`, {
      detail: `add a range with: ${addRangeCommand(who)}`,
    });
  }
  const env: Record<string, string> = { PATH: DEFAULT_PATH, HOME: user.home, ...opts.env };
  for (const [k, v] of Object.entries(env)) {
    if (!ENV_NAME.test(k)) throw new UserError(`environment variable name ${JSON.stringify(k)} is invalid: use letters, digits and "_", not starting with a digit`);
    if (v.includes("\0")) throw new UserError(`environment variable ${k} contains a NUL byte`);
  }
  const secrets = opts.secrets ?? [];
  for (const s of secrets) {
    if (!SECRET_ID.test(s.id)) throw new UserError(`secret id ${JSON.stringify(s.id)} is invalid: use letters, digits, ".", "_" and "-"`);
  }

  // Beside the rootfs, in withRootfs' dir (the store's tmp/ for builds): if mstage is killed, gc
  // removes it with the rest of the dead process's work dir.
  // On the scratch tmpfs (withRootfs), so made and removed synchronously.
  const tmp = mkdtempSync(join(dirname(root), "step-"));
  const plan = new MountPlan(root);
  try {
    const workdir = opts.workdir || "/";
    // Like Docker's WORKDIR, a missing workdir is created and stays in the layer.
    try {
      mkdirInRoot(root, workdir);
    } catch (e) {
      throw new UserError(`cannot create the workdir ${workdir} in the rootfs: ${(e as Error).message}`, { cause: e });
    }
    const proc = plan.target("/proc", "dir");
    const dev = await devTemplate(root);
    plan.fstab.push(...dev.mounts);
    plan.mount(dev.dir, plan.target("/dev", "dir"), "none", "rbind");
    // Per-step copies: the step may edit them (as with Docker), and neither the host's files nor the
    // layer change. Bound over scaffold files, so nothing is created in the upper dir.
    const hosts = join(tmp, "hosts");
    const resolv = join(tmp, "resolv.conf");
    writeFileSync(hosts, opts.network === "none" ? NONE_HOSTS : await readHostFile("/etc/hosts", NONE_HOSTS));
    writeFileSync(resolv, opts.network === "none" ? "" : await readHostFile("/etc/resolv.conf", ""));
    plan.bind(hosts, plan.target("/etc/hosts", "file"), false);
    plan.bind(resolv, plan.target("/etc/resolv.conf", "file"), false);
    if (opts.network === "none") {
      // A new network namespace may have its own sysfs; the host's is never shown.
      const sys = plan.target("/sys", "dir");
      plan.mount("sysfs", sys, "sysfs", "ro,nosuid,nodev,noexec");
      plan.harden(sys, sysMasksHere());
      plan.ops.push("lo");
    }
    // The step's UTS namespace starts with this process's host name, mostly the one it wants already
    // (userns.ts): a process less per step.
    const name = opts.hostname ?? STEP_HOSTNAME;
    if (hostname() !== name && findTool("hostname")) plan.ops.push("hostname", name);
    for (const b of opts.binds ?? []) {
      let isDir: boolean;
      try {
        isDir = statSync(b.host).isDirectory();
      } catch {
        throw new UserError(`bind source ${b.host} (for ${b.target}) does not exist on the host`);
      }
      plan.bind(b.host, plan.target(b.target, isDir ? "dir" : "file"), b.readonly);
    }
    for (const c of opts.caches ?? []) {
      mkdirSync(c.dir, { recursive: true });
      plan.bind(c.dir, plan.target(c.target, "dir"), false);
    }
    for (const t of opts.tmpfs ?? []) plan.mount("tmpfs", plan.target(t, "dir"), "tmpfs", "nosuid,nodev");
    if (secrets.length) {
      const dir = plan.target("/run/secrets", "dir");
      plan.mount("tmpfs", dir, "tmpfs", "mode=0755,nosuid,nodev,noexec,size=16m");
      // fd 3 is the setup script's status pipe; secrets come on 4, 5, … so they never touch a disk.
      secrets.forEach((s, i) => plan.ops.push("secret", String(4 + i), join(dir, s.id), String(user.uid), String(user.gid)));
    }

    // Last, so that no bind can cover them: /proc's read-only paths and masks.
    plan.harden(proc, procMasksHere());
    const fstab = join(tmp, "fstab");
    writeFileSync(fstab, plan.fstab.join("\n") + "\n");

    const switchUser = user.uid === 0 && user.gid === 0 ? [] : [`--reuid=${user.uid}`, `--regid=${user.gid}`, user.groups.length ? `--groups=${user.groups.join(",")}` : "--clear-groups"];
    const envPairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const start = [...dev.setpriv, ...capabilityOptions(), ...switchUser, "--", ...opts.argv];
    const final = [root, workdir, ...dev.umount, String(envPairs.length), ...envPairs, ...start];
    const nsFlags = ["--pid", "--fork", "--kill-child", "--mount", "--propagation=private", "--ipc", "--uts", `--mount-proc=${proc}`];
    if (opts.network === "none") nsFlags.push("--net");
    // setpriv's parent-death signal: if mstage dies in any way, unshare dies, and its --kill-child
    // takes the step's pid namespace (every process of the step) with it.
    const args = ["--pdeathsig=KILL", "--", requireTool("unshare"), ...nsFlags, "--", "/bin/sh", "-c", SETUP_SCRIPT, "mstage-step", fstab, ...plan.ops, "--", ...final];
    return await spawnStep(requireTool("setpriv"), args, secrets, opts);
  } finally {
    plan.cleanUp();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The step started from a launcher shell (step-launcher.ts), or undefined when none is to be had. */
function launchedStep(argv: string[], opts: RunStepOptions): Promise<StepResult> | undefined {
  let settle: { resolve(r: StepResult): void; reject(e: unknown): void } | undefined;
  const done = new Promise<StepResult>((resolve, reject) => (settle = { resolve, reject }));
  let ready = false;
  let setupErr = "";
  const finish = () => opts.signal?.removeEventListener("abort", onAbort);
  const step = launchStep(argv, {
    onOutput(chunk, name) {
      if (!ready && name === "stderr") setupErr = (setupErr + chunk).slice(-4000);
      opts.onOutput?.(chunk, name);
    },
    onReady: () => (ready = true),
    onExit(status) {
      finish();
      if (opts.signal?.aborted) return settle!.reject(opts.signal.reason);
      if (!ready) return settle!.reject(setupFailed(setupErr));
      settle!.resolve({ exitCode: status });
    },
    onLost(e) {
      finish();
      settle!.reject(opts.signal?.aborted ? opts.signal.reason : new UserError(`the step's sandbox ended before the step did: ${e.message}`, { detail: "run `mstage doctor` to check this machine" }));
    },
  });
  if (!step) return undefined;
  const onAbort = () => step.kill();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  return done;
}

function setupFailed(setupErr: string): UserError {
  return new UserError(`could not set up the sandbox for the step${setupErr ? ": " + setupErr.trim() : ""}`, {
    detail: "run `mstage doctor` to check this machine",
  });
}

/** The host's /etc/hosts and /etc/resolv.conf as last read, re-read only when their stat changes. */
const hostFiles = new Map<string, { stamp: string; text: string }>();

async function readHostFile(path: string, fallback: string): Promise<string> {
  try {
    const st = statSync(path);
    const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    const known = hostFiles.get(path);
    if (known?.stamp === stamp) return known.text;
    const text = await readFile(path, "utf8");
    hostFiles.set(path, { stamp, text });
    return text;
  } catch {
    return fallback;
  }
}

function spawnStep(cmd: string, args: string[], secrets: StepSecret[], opts: RunStepOptions): Promise<StepResult> {
  // Secrets come on pipes of their own, and a tty step takes mstage's terminal: those are spawned.
  if (!opts.tty && secrets.length === 0) {
    const launched = launchedStep([cmd, ...args], opts);
    if (launched) return launched;
  }
  return new Promise((resolve, reject) => {
    const io = opts.tty ? "inherit" : "pipe";
    const child = spawn(cmd, args, {
      stdio: [opts.tty ? "inherit" : "ignore", io, io, "pipe", ...secrets.map(() => "pipe" as const)],
      env: { PATH: hostPath() },
      // A new session (setsid), as runc gives a container: without it the step still has the
      // terminal that mstage runs on as its controlling terminal, opens /dev/tty and types into the
      // user's shell with TIOCSTI. Only `mstage shell` hands its terminal to the step.
      detached: !opts.tty,
    });
    let ready = false;
    let setupErr = "";
    const onAbort = () => child.kill("SIGKILL");
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    // On a terminal, Ctrl-C reaches the step's processes directly (same foreground process group):
    // it is theirs to handle, as in any shell, and must not take mstage and the session down.
    const ignore = () => {};
    if (opts.tty) process.on("SIGINT", ignore);

    (child.stdio[3] as Readable).on("data", () => (ready = true));
    secrets.forEach((s, i) => {
      const w = child.stdio[4 + i] as Writable;
      w.on("error", () => {}); // the setup failed before reading it; reported below
      w.end(s.data);
    });
    for (const [stream, name] of [[child.stdout, "stdout"], [child.stderr, "stderr"]] as const) {
      if (!stream) continue;
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        if (!ready && name === "stderr") setupErr = (setupErr + chunk).slice(-4000);
        opts.onOutput?.(chunk, name);
      });
    }
    child.once("error", (e) => {
      process.off("SIGINT", ignore);
      reject(e);
    });
    child.once("close", (code, sig) => {
      opts.signal?.removeEventListener("abort", onAbort);
      process.off("SIGINT", ignore);
      if (opts.signal?.aborted) return reject(opts.signal.reason);
      if (!ready) return reject(setupFailed(setupErr));
      resolve({ exitCode: code ?? 128 + (sig ? constants.signals[sig] : 0) });
    });
  });
}
