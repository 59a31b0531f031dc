// Short host tools (the overlay's mount and umount) run through one small shell that this process
// starts once and feeds on a pipe, instead of a spawn each. Node forks its whole (large) process
// for every spawn: 5–30 ms each on a loaded machine, where the shell's fork of itself costs a tenth
// of that, and a stage mounts and unmounts its rootfs once each (issue 16: 2000 stages).
// The shell runs in this process's namespaces, in a session of its own (so a Ctrl-C on the terminal
// does not kill it under a cleanup that still needs it), and ends when this process closes the pipe
// or dies. Each shell answers its requests in order; a request that finds every shell busy (a long
// `sync -f` of one stage while another mounts) starts another, up to MAX_RUNNERS. Should a shell
// fail, its tools are spawned as before.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { promisify } from "node:util";
import type { Readable, Writable } from "node:stream";
import { hostPath } from "./tools.ts";

const spawnTool = promisify(execFile);

// Per request: the argument count, each argument, the working dir and the file for the tool's stdout
// (/dev/null unless asked), one line each. Per answer: "EXIT BYTES" and then BYTES of the tool's
// stderr. LC_ALL=C makes ${#err} count bytes.
const LOOP = String.raw`while IFS= read -r n; do
  set --
  while [ "$n" -gt 0 ]; do IFS= read -r a; set -- "$@" "$a"; n=$((n - 1)); done
  IFS= read -r cwd; IFS= read -r out
  err=$(cd "$cwd" && "$@" 2>&1 >"$out"); rc=$?
  printf '%s %s\n%s' "$rc" "${"$"}{#err}" "$err"
done`;

interface Pending {
  file: string;
  args: string[];
  cwd?: string;
  stdout?: string;
  resolve(): void;
  reject(e: unknown): void;
}

/** The error execFile would give, so callers read `.stderr` and `.code` the same way. */
function toolError(file: string, args: string[], code: number, stderr: string): Error {
  return Object.assign(new Error(`Command failed: ${[file, ...args].join(" ")}\n${stderr}`), { code, stderr, stdout: "" });
}

class Runner {
  private readonly child: ChildProcess;
  private readonly pending: Pending[] = [];
  private out: Buffer = Buffer.alloc(0);
  dead = false;

  constructor() {
    this.child = spawn("/bin/sh", ["-c", LOOP], {
      stdio: ["pipe", "pipe", "ignore"],
      env: { PATH: hostPath(), LC_ALL: "C" },
      detached: true,
    });
    this.child.once("error", () => {
      broken = true;
      this.fail();
    });
    this.child.once("exit", () => this.fail());
    (this.child.stdin as Writable).on("error", () => this.fail());
    (this.child.stdout as Readable).on("data", (d: Buffer) => this.answer(d));
    this.idle();
  }

  get busy(): number {
    return this.pending.length;
  }

  run(p: Pending): void {
    if (this.pending.push(p) === 1) this.hold();
    (this.child.stdin as Writable).write(`${p.args.length + 1}\n${p.file}\n${p.args.join("\n")}${p.args.length ? "\n" : ""}${p.cwd ?? "/"}\n${p.stdout ?? "/dev/null"}\n`);
  }

  private answer(d: Buffer): void {
    this.out = this.out.length ? Buffer.concat([this.out, d]) : d;
    for (;;) {
      const nl = this.out.indexOf(10);
      if (nl < 0) return;
      const [code, bytes] = this.out.subarray(0, nl).toString().split(" ").map(Number) as [number, number];
      if (this.out.length < nl + 1 + bytes) return;
      const stderr = this.out.subarray(nl + 1, nl + 1 + bytes).toString();
      this.out = this.out.subarray(nl + 1 + bytes);
      const p = this.pending.shift();
      if (!p) return;
      if (code === 0) p.resolve();
      else p.reject(toolError(p.file, p.args, code, stderr));
      if (this.pending.length === 0) this.idle();
    }
  }

  /** The shell is gone: what it had not answered is spawned directly. */
  private fail(): void {
    if (this.dead) return;
    this.dead = true;
    const i = runners.indexOf(this);
    if (i >= 0) runners.splice(i, 1);
    for (const p of this.pending.splice(0)) direct(p);
  }

  // While nothing is asked, the shell and its pipes do not keep this process alive.
  private idle(): void {
    this.child.unref();
    (this.child.stdin as unknown as { unref?(): void }).unref?.();
    (this.child.stdout as unknown as { unref?(): void }).unref?.();
  }

  private hold(): void {
    this.child.ref();
    (this.child.stdin as unknown as { ref?(): void }).ref?.();
    (this.child.stdout as unknown as { ref?(): void }).ref?.();
  }
}

const MAX_RUNNERS = 4;
const runners: Runner[] = [];
let broken = false;

/** An idle shell, else a new one while there are fewer than MAX_RUNNERS, else the least busy. */
function pick(): Runner {
  const idle = runners.find((r) => r.busy === 0);
  if (idle) return idle;
  if (runners.length < MAX_RUNNERS) {
    const r = new Runner();
    runners.push(r);
    return r;
  }
  return runners.reduce((a, b) => (b.busy < a.busy ? b : a));
}

function direct(p: Pending): void {
  if (!p.stdout) {
    spawnTool(p.file, p.args, { cwd: p.cwd }).then(() => p.resolve(), p.reject);
    return;
  }
  // Its stdout straight into the file: no buffer to outgrow.
  let fd: number;
  try {
    fd = openSync(p.stdout, "w");
  } catch (e) {
    return p.reject(e);
  }
  const child = spawn(p.file, p.args, { cwd: p.cwd, stdio: ["ignore", fd, "pipe"] });
  closeSync(fd);
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  child.once("error", p.reject);
  child.once("close", (code) => (code === 0 ? p.resolve() : p.reject(toolError(p.file, p.args, code ?? 1, stderr))));
}

/**
 * Runs `file` (an absolute path) with `args` and resolves when it exits 0; otherwise rejects with
 * an error carrying the tool's `stderr` and exit `code`, as execFile's does. Only for tools that
 * finish quickly; their stdout is discarded, or written to the file `stdout` (created or truncated).
 */
export function runTool(file: string, args: string[], opts: { cwd?: string; stdout?: string } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const p: Pending = { file, args, cwd: opts.cwd, stdout: opts.stdout, resolve, reject };
    // A line-based request cannot carry a newline.
    if (broken || [file, ...args, opts.cwd ?? "", opts.stdout ?? ""].some((a) => a.includes("\n"))) return direct(p);
    let runner: Runner;
    try {
      runner = pick();
    } catch {
      broken = true;
      return direct(p);
    }
    runner.run(p);
  });
}
