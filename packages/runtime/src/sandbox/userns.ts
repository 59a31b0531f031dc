// Re-executes mstage once inside a user namespace where the invoker is root and its subordinate ids
// are mapped (like `buildah unshare`), so overlay mounts and files owned by other ids just work.
// Imported on its own (`@mstage/runtime/userns`), so the invoking process that only re-executes
// never loads the rest of the runtime.
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { closeSync, readFileSync, readlinkSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import type { Socket } from "node:net";
import { userInfo } from "node:os";
import { UserError } from "@mstage/core";
import { planIdMapping, type IdMapping } from "./subid.ts";
import { hostPath, requireTool } from "./tools.ts";

const run = promisify(execFile);

/** Set inside the namespace to the namespace's identity (`user:[inode]`), so a nested mstage sees it. */
const MARKER = "MSTAGE_USERNS";
/** A step's host name unless told another (RunStepOptions.hostname). */
export const STEP_HOSTNAME = "mstage";
/** Set inside the namespace to the mapping's kind (see IdMapping). */
const KIND = "MSTAGE_USERNS_KIND";

/** Set inside the namespace to the invoking user's name (inside, everyone is root). */
const INVOKER = "MSTAGE_USERNS_INVOKER";

/** Set inside the namespace to the descriptor the invoker's hand-off arrives on (see ReexecOptions.handOff). */
const HANDOFF_FD = "MSTAGE_USERNS_HANDOFF_FD";

let inside: boolean | undefined;

/** True when this process runs inside the user namespace that mstage made (as its root). */
export function inUserNamespace(): boolean {
  if (inside === undefined) {
    const want = process.env[MARKER];
    let have: string | undefined;
    try {
      have = readlinkSync("/proc/self/ns/user");
    } catch {
      have = undefined;
    }
    inside = !!want && want === have && process.getuid?.() === 0;
  }
  return inside;
}

/** Inside the namespace: how ids are mapped (undefined outside). */
export function userNamespaceKind(): IdMapping["kind"] | undefined {
  if (!inUserNamespace()) return undefined;
  const k = process.env[KIND];
  return k === "subid" || k === "identity" || k === "single" ? k : undefined;
}

/** The name of the user who ran mstage, also inside the namespace. */
export function invokingUser(): string {
  return (inUserNamespace() && process.env[INVOKER]) || userInfo().username;
}

export interface ReexecOptions {
  /** Told once, before re-executing, when the mapping is degraded (no subordinate range). */
  onNote?: (message: string) => void;
  /**
   * What the invoker already worked out (e.g. the digests of local sources its plan hashed), for
   * the process inside to read with takeHandOff() instead of working it out again. It travels on a
   * pipe of its own, so its size is not bounded as an environment variable's would be.
   */
  handOff?: string;
}

let handOffTaken = false;

/**
 * Inside the namespace: the invoker's ReexecOptions.handOff, read once (later calls, and a process
 * not started with one, get undefined). The descriptor is closed and its variable removed, so
 * nothing this process starts inherits either.
 */
export function takeHandOff(): string | undefined {
  const fd = Number(process.env[HANDOFF_FD]);
  if (handOffTaken || !inUserNamespace() || !Number.isInteger(fd) || fd < 3) return undefined;
  handOffTaken = true;
  delete process.env[HANDOFF_FD];
  try {
    return readFileSync(fd, "utf8");
  } catch {
    return undefined;
  } finally {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
}

/**
 * Makes sure the rest of the process runs inside mstage's user namespace. Inside it, returns at once.
 * Outside, runs `argv` (default: this very process again) inside a new user + mount namespace,
 * forwards SIGINT/SIGTERM/SIGHUP to it, and exits with its exit code: the returned promise never
 * settles in that case.
 */
export function reexecInUserNamespace(argv?: string[], opts: ReexecOptions = {}): Promise<never> | void {
  if (inUserNamespace()) {
    watchParent();
    return;
  }
  return reexec(argv ?? [process.execPath, ...process.execArgv, ...process.argv.slice(1)], opts);
}

// The child enters the namespace (unshare(2) via util-linux, without a mapping), says so on fd 3,
// and waits there until the parent wrote its id maps and sends the namespace's identity back.
// Only then does it exec mstage, which therefore starts as uid 0 with full capabilities inside.
// It also names its own UTS namespace after the steps' host name, which every step's namespace then
// starts with: a `hostname` run per step is needed only for another name (run.ts).
const HANDSHAKE = `printf r >&3 && read -r ${MARKER} <&3 && exec 3>&- && { hostname ${STEP_HOSTNAME} 2>/dev/null || :; } && export ${MARKER} && exec "$@"`;

interface Started {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `argv` in a new user + mount namespace with `mapping`, resolving once the ids are mapped.
 * A `handOff` is written on fd 4 once the child is inside (and then closed: the child reads to EOF).
 */
async function startInUserNamespace(argv: string[], mapping: IdMapping, stdio: "inherit" | "pipe", handOff?: string): Promise<Started> {
  const unshare = requireTool("unshare");
  const env: NodeJS.ProcessEnv = { ...process.env, [KIND]: mapping.kind, [INVOKER]: userInfo().username };
  delete env[HANDOFF_FD];
  if (handOff !== undefined) env[HANDOFF_FD] = "4";
  const child = spawn(
    unshare,
    ["--user", "--mount", "--propagation", "private", "--uts", "--", "/bin/sh", "-c", HANDSHAKE, "mstage-userns", ...argv],
    { stdio: handOff === undefined ? [stdio, stdio, stdio, "pipe"] : [stdio, stdio, stdio, "pipe", "pipe"], env },
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  const channel = child.stdio[3] as Socket;
  try {
    await waitForByte(channel, exited);
    await writeIdMaps(child.pid!, mapping);
    channel.end(readlinkSync(`/proc/${child.pid}/ns/user`) + "\n");
    if (handOff !== undefined) {
      const out = child.stdio[4] as Socket;
      // A child that exits without reading it must not fail the invoker with EPIPE.
      out.on("error", () => {});
      out.end(handOff);
    }
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return { child, exited };
}

async function reexec(argv: string[], opts: ReexecOptions): Promise<never> {
  const mapping = planIdMapping();
  if (mapping.note) opts.onNote?.(mapping.note);
  // Forward from the start: a signal during the handshake must not leave the child behind. The child
  // shares our process group, so a Ctrl-C typed on a terminal reaches it directly: forwarding that
  // SIGINT too would deliver it twice (and kill a `mstage shell` session that had handled the first).
  let child: ChildProcess | undefined;
  const pending: NodeJS.Signals[] = [];
  const onTerminal = [process.stdin, process.stdout, process.stderr].some((s) => s.isTTY);
  const forward = (sig: NodeJS.Signals) => () => {
    if (sig === "SIGINT" && onTerminal) return;
    if (child) child.kill(sig);
    else pending.push(sig);
  };
  const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((sig) => [sig, forward(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  let result: { code: number | null; signal: NodeJS.Signals | null };
  try {
    const started = await startInUserNamespace(argv, mapping, "inherit", opts.handOff);
    child = started.child;
    for (const sig of pending) child.kill(sig);
    result = await started.exited;
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
  }
  const { code, signal } = result;
  if (signal) {
    // Die the same way, so the invoker's shell sees the signal rather than an exit code.
    process.kill(process.pid, signal);
  }
  process.exit(code ?? 1);
}

/**
 * For `mstage doctor`: runs a shell script inside a namespace made exactly as reexecInUserNamespace
 * makes it, and returns its exit code and output.
 */
export async function probeUserNamespace(script: string, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string; mapping: IdMapping }> {
  const mapping = planIdMapping();
  const argv = [requireTool("env"), `PATH=${hostPath()}`, "/bin/sh", "-c", script, "mstage-probe", ...args];
  const { child, exited } = await startInUserNamespace(argv, mapping, "pipe");
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const { code } = await exited;
  return { code: code ?? 1, stdout, stderr, mapping };
}

function waitForByte(s: Socket, exited: Promise<unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once("data", () => resolve());
    s.once("error", reject);
    exited.then(() => reject(new UserError("could not create a user namespace: `unshare --user` failed (run `mstage doctor`)")), reject);
  });
}

function mapText(lines: [number, number, number][]): string {
  return lines.map((l) => l.join(" ")).join("\n") + "\n";
}

async function writeIdMaps(pid: number, m: IdMapping): Promise<void> {
  try {
    if (process.getuid!() === 0) {
      // Real root holds CAP_SETUID over the new namespace and may write any mapping itself.
      await writeFile(`/proc/${pid}/uid_map`, mapText(m.uid));
      await writeFile(`/proc/${pid}/gid_map`, mapText(m.gid));
    } else if (m.kind === "subid") {
      await run(requireTool("newuidmap"), [String(pid), ...m.uid.flat().map(String)]);
      await run(requireTool("newgidmap"), [String(pid), ...m.gid.flat().map(String)]);
    } else {
      // An unprivileged user may map just itself, after giving up setgroups(2).
      await writeFile(`/proc/${pid}/setgroups`, "deny");
      await writeFile(`/proc/${pid}/uid_map`, mapText(m.uid));
      await writeFile(`/proc/${pid}/gid_map`, mapText(m.gid));
    }
  } catch (e) {
    const detail = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
    throw new UserError(`could not map user ids into mstage's user namespace: ${detail}`, {
      cause: e,
      detail: "run `mstage doctor` to see what is missing and how to fix it",
    });
  }
}

let watching = false;

/** Inside: if the mstage that re-executed us dies (even by SIGKILL), terminate too. */
function watchParent(): void {
  if (watching) return;
  watching = true;
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, "SIGTERM");
  }, 500).unref();
}
