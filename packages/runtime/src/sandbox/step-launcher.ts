// Starts steps from a small shell that this process starts once, instead of a Node spawn per step:
// a spawn forks the whole (large) builder process, which cost 5–15 ms of its main thread per step
// and as much again in the kernel (issue 16: 2000 stages). The shell forks itself for each step.
// It runs in a session of its own (no controlling terminal, as a step's own setsid gave) and dies
// with this process (setpriv --pdeathsig), and every step it starts dies with it in turn (the
// step's own --pdeathsig): aborting a step kills its shell. One step at a time per shell, run in the
// foreground (a background job of a script would start with SIGINT and SIGQUIT ignored); a busy
// pool starts another.
//
// Per request on its stdin: N, then N arguments, each "-" and one line, "+" and one line of
// printf %b escapes for an argument holding a newline or a backslash, or "=" and an empty line for
// the sandbox's setup script, which the shell was given once when it started: sent with each step,
// its kilobyte of escapes cost the shell a read(2) per byte and a fork for printf (issue 16). The step gets /dev/null as
// stdin and the shell's stdout, stderr and fd 3 (the setup's status pipe, where it says "ok").
// When the step and all its processes are gone, the shell writes its random mark (read from its
// stdin, never in an environment) on stdout and stderr, so that each pipe's bytes up to the mark are
// the step's, and "R<status>\n" on fd 3 (128+N for a signal).
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { StringDecoder } from "node:string_decoder";
import type { Readable, Writable } from "node:stream";
import { SETUP_SCRIPT } from "./setup-script.ts";
import { findTool, hostPath } from "./tools.ts";

// The shell's own stderr is /dev/null (it reports a foreground job killed by a signal there, which
// is no output of the step's); the step's stderr is the pipe, kept on fd 4 and given to the step
// inside a subshell that execs it (dash keeps a command's redirections while it waits for it).
const LOOP = String.raw`exec 4>&2 2>/dev/null
setup=$1
IFS= read -r mark || exit 0
while IFS= read -r n; do
  set --
  while [ "$n" -gt 0 ]; do
    IFS= read -r kind; IFS= read -r a
    if [ "$kind" = = ]; then a=$setup
    elif [ "$kind" = + ]; then a=$(printf '%bx' "$a"); a=${"$"}{a%x}; fi
    set -- "$@" "$a"; n=$((n - 1))
  done
  (exec "$@" </dev/null 2>&4 4>&-); rc=$?
  printf '%s' "$mark"; printf '%s' "$mark" >&4
  printf 'R%s\n' "$rc" >&3
done`;

export interface LaunchedStep {
  onOutput(chunk: string, stream: "stdout" | "stderr"): void;
  /** The setup's "ok" arrived: the step itself runs. */
  onReady(): void;
  onExit(status: number): void;
  /** The launcher died before the step ended. */
  onLost(e: Error): void;
}

class Launcher {
  private readonly child: ChildProcess;
  private readonly mark = randomBytes(18).toString("base64url");
  private readonly markBytes = Buffer.from(this.mark);
  private step: LaunchedStep | undefined;
  private status = "";
  private exitStatus: number | undefined;
  private readonly streams = {
    stdout: { decoder: new StringDecoder("utf8"), held: Buffer.alloc(0), ended: false },
    stderr: { decoder: new StringDecoder("utf8"), held: Buffer.alloc(0), ended: false },
  };
  dead = false;

  constructor(sh: string, setpriv: string) {
    this.child = spawn(setpriv, ["--pdeathsig=KILL", "--", sh, "-c", LOOP, "mstage-launcher", SETUP_SCRIPT], {
      stdio: ["pipe", "pipe", "pipe", "pipe"],
      env: { PATH: hostPath() },
      detached: true,
    });
    this.child.once("error", (e) => this.lost(e));
    this.child.once("exit", () => this.lost(new Error("the sandbox's step launcher exited")));
    (this.child.stdin as Writable).on("error", (e) => this.lost(e));
    (this.child.stdin as Writable).write(this.mark + "\n");
    for (const name of ["stdout", "stderr"] as const) (this.child[name] as Readable).on("data", (d: Buffer) => this.output(name, d));
    (this.child.stdio[3] as Readable).on("data", (d: Buffer) => this.onStatus(d));
    this.idle();
  }

  get busy(): boolean {
    return this.step !== undefined;
  }

  start(argv: string[], step: LaunchedStep): void {
    this.step = step;
    this.exitStatus = undefined;
    this.streams.stdout.ended = this.streams.stderr.ended = false;
    this.hold();
    const lines = [String(argv.length)];
    for (const a of argv) {
      if (a === SETUP_SCRIPT) lines.push("=", "");
      else if (/[\n\\]/.test(a)) lines.push("+", a.replace(/\\/g, "\\\\").replace(/\n/g, "\\n"));
      else lines.push("-", a);
    }
    (this.child.stdin as Writable).write(lines.join("\n") + "\n");
  }

  /** The shell dies; the step's setpriv/unshare follows (pdeathsig), and its --kill-child takes the step's pid namespace. */
  kill(): void {
    if (this.step) this.lost(new Error("the step was stopped"));
  }

  private onStatus(d: Buffer): void {
    this.status += d.toString("latin1");
    for (;;) {
      if (this.status.startsWith("ok")) {
        this.status = this.status.slice(2);
        this.step?.onReady();
        continue;
      }
      const nl = this.status.indexOf("\n");
      if (nl < 0) return;
      const line = this.status.slice(0, nl);
      this.status = this.status.slice(nl + 1);
      if (line[0] === "R") {
        this.exitStatus = Number(line.slice(1));
        this.maybeDone();
      }
    }
  }

  private output(name: "stdout" | "stderr", d: Buffer): void {
    const s = this.streams[name];
    let buf = s.held.length ? Buffer.concat([s.held, d]) : d;
    if (s.ended) {
      // Bytes after the mark belong to no step: a shell never writes them.
      s.held = Buffer.alloc(0);
      return;
    }
    const at = buf.indexOf(this.mark);
    if (at >= 0) {
      this.emit(name, buf.subarray(0, at), true);
      s.ended = true;
      s.held = Buffer.alloc(0);
      this.maybeDone();
      return;
    }
    // Keep back only an end that could be the start of the mark: the rest is shown at once.
    let keep = Math.min(buf.length, this.mark.length - 1);
    while (keep > 0 && !buf.subarray(buf.length - keep).equals(this.markBytes.subarray(0, keep))) keep--;
    s.held = Buffer.from(buf.subarray(buf.length - keep));
    buf = buf.subarray(0, buf.length - keep);
    this.emit(name, buf, false);
  }

  private emit(name: "stdout" | "stderr", bytes: Buffer, last: boolean): void {
    const s = this.streams[name];
    const text = s.decoder.write(bytes) + (last ? s.decoder.end() : "");
    if (text) this.step?.onOutput(text, name);
  }

  private maybeDone(): void {
    const step = this.step;
    if (!step || this.exitStatus === undefined || !this.streams.stdout.ended || !this.streams.stderr.ended) return;
    this.step = undefined;
    this.idle();
    step.onExit(this.exitStatus);
  }

  private lost(e: Error): void {
    if (this.dead) return;
    this.dead = true;
    const i = pool.indexOf(this);
    if (i >= 0) pool.splice(i, 1);
    const step = this.step;
    this.step = undefined;
    try {
      this.child.kill("SIGKILL");
    } catch {
      // gone already
    }
    step?.onLost(e);
  }

  // While it runs no step, the shell and its pipes do not keep this process alive.
  private idle(): void {
    this.child.unref();
    for (const s of this.child.stdio) (s as unknown as { unref?(): void } | null)?.unref?.();
  }

  private hold(): void {
    this.child.ref();
    for (const s of this.child.stdio) (s as unknown as { ref?(): void } | null)?.ref?.();
  }
}

const MAX_LAUNCHERS = 16;
const pool: Launcher[] = [];
let broken = false;

/**
 * Starts `argv` (an absolute path first) from an idle launcher shell, or returns undefined when
 * none can be had (a caller then spawns the step itself). `kill()` ends the step (onLost follows).
 */
export function launchStep(argv: string[], step: LaunchedStep): { kill(): void } | undefined {
  if (broken) return undefined;
  let l = pool.find((x) => !x.busy && !x.dead);
  if (!l) {
    if (pool.length >= MAX_LAUNCHERS) return undefined;
    const sh = findTool("sh");
    const setpriv = findTool("setpriv");
    if (!sh || !setpriv) return undefined;
    try {
      l = new Launcher(sh, setpriv);
    } catch {
      broken = true;
      return undefined;
    }
    pool.push(l);
  }
  const launcher = l;
  launcher.start(argv, step);
  return { kill: () => launcher.kill() };
}
