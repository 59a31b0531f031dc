// Renders the builder's events. On a TTY: one live line per running stage (name, phase, elapsed,
// last output line) kept under a scrolling log. Otherwise: plain lines prefixed with the stage name.
// Quiet: nothing but what the caller prints as results.
import kleur from "kleur";
import { UserError } from "@mstage/core";
import type { BuildEvent } from "@mstage/runtime";

export type ProgressMode = "tty" | "plain" | "quiet";

export interface ProgressRenderer {
  onEvent(e: BuildEvent): void;
  /** Removes the live lines; call before printing anything else (summary, errors). */
  stop(): void;
}

export function resolveProgressMode(option: unknown, quiet: boolean, stream: NodeJS.WriteStream): ProgressMode {
  if (quiet) return "quiet";
  const o = typeof option === "string" ? option : "auto";
  if (o === "tty") return "tty";
  if (o === "plain") return "plain";
  if (o !== "auto") throw new UserError(`--progress must be auto, tty or plain, got "${o}"`);
  return stream.isTTY && process.env.TERM !== "dumb" ? "tty" : "plain";
}

export function createProgress(mode: ProgressMode, stream: NodeJS.WriteStream = process.stderr): ProgressRenderer {
  if (mode === "quiet") return { onEvent() {}, stop() {} };
  if (mode === "plain") return new PlainProgress(stream);
  return new TtyProgress(stream);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

export function formatSize(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** "212/480 MB 61 MB/s": a transfer's bytes in the unit of its total, and its rate. */
export function formatTransfer(done: number, total: number, bytesPerSecond: number): string {
  const [unit, name] = total >= 1e9 ? [1e9, "GB"] : total >= 1e6 ? [1e6, "MB"] : [1e3, "kB"];
  const amount = (n: number) => (n / unit).toFixed(total / unit < 10 ? 1 : 0);
  return `${amount(done)}/${amount(total)} ${name} ${formatRate(bytesPerSecond)}`;
}

/** "61 MB/s", "480 kB/s". */
export function formatRate(bytesPerSecond: number): string {
  return bytesPerSecond >= 1e6 ? `${(bytesPerSecond / 1e6).toFixed(bytesPerSecond < 1e7 ? 1 : 0)} MB/s` : `${Math.round(bytesPerSecond / 1e3)} kB/s`;
}

type TransferEvent = Extract<BuildEvent, { type: "transfer" }>;

function transferLine(e: TransferEvent): string {
  return `${e.direction} ${e.ref} ${formatTransfer(e.done, e.total, e.bytesPerSecond)}`;
}

function describeDone(e: Extract<BuildEvent, { type: "stage-done" }>): string {
  if (e.outcome === "config") return `config only (nothing ran) in ${formatDuration(e.ms)}`;
  if (e.outcome === "cached") return "cached";
  return `built in ${formatDuration(e.ms)}`;
}

class PlainProgress implements ProgressRenderer {
  /** The phase last printed per stage: a phase's progress updates are for the live line only. */
  private readonly phases = new Map<string, string>();
  constructor(private readonly out: NodeJS.WriteStream) {}
  private line(stage: string | undefined, text: string): void {
    this.out.write(stage ? `${kleur.cyan(`[${stage}]`)} ${text}\n` : `${text}\n`);
  }
  onEvent(e: BuildEvent): void {
    switch (e.type) {
      case "stage-start":
        return this.line(e.stage, kleur.bold(e.status === "config" ? "config only" : e.status === "new" ? "building (new)" : "rebuilding"));
      case "stage-phase":
        if (this.phases.get(e.stage) === e.phase) return;
        this.phases.set(e.stage, e.phase);
        return this.line(e.stage, kleur.gray(`${e.phase}`));
      case "log":
        return this.line(e.stage, e.line);
      case "note":
        return this.line(e.stage, kleur.yellow(e.message));
      case "stage-cached":
        return this.line(e.stage, kleur.green("cached"));
      case "stage-done":
        return this.line(e.stage, kleur.green(describeDone(e)));
      case "stage-failed":
        return this.line(e.stage, e.interrupted ? kleur.yellow(`interrupted after ${formatDuration(e.ms)}`) : kleur.red(`failed after ${formatDuration(e.ms)}`));
      case "transfer":
        // One line when it is over; the bytes on the way would be hundreds of lines.
        if (e.done === e.total) this.line(e.stage, kleur.gray(transferLine(e)));
        return;
      case "compress":
        if (e.done >= e.total) return this.line(e.stage, kleur.gray(describeCompressed(e)));
        return;
      case "output":
        return;
    }
  }
  stop(): void {}
}

function describeCompressed(e: Extract<BuildEvent, { type: "compress" }>): string {
  const ms = Date.now() - e.started;
  return `compressed layer ${e.layer.slice(7, 19)} (${formatSize(e.total)}, ${e.format}) in ${formatDuration(ms)}, ${formatRate((e.total / Math.max(ms, 1)) * 1000)}`;
}

interface Live {
  stage: string;
  phase: string;
  started: number;
  last: string;
}

/** The layers of one output being compressed, for its live line. */
interface Compressing {
  format: string;
  started: number;
  layers: Map<string, { done: number; total: number }>;
}

class TtyProgress implements ProgressRenderer {
  private readonly live = new Map<string, Live>();
  private readonly compressing = new Map<string, Compressing>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly out: NodeJS.WriteStream) {}

  onEvent(e: BuildEvent): void {
    switch (e.type) {
      case "stage-start":
        this.live.set(e.stage, { stage: e.stage, phase: e.status === "config" ? "config" : "starting", started: Date.now(), last: "" });
        this.ensureTimer();
        break;
      case "stage-phase": {
        // Bases (a debian() rootfs, a pull) are made while planning, before the stage starts.
        const l = this.live.get(e.stage);
        const phase = e.progress ? `${e.phase} ${kleur.cyan(e.progress)}` : e.phase;
        if (l) l.phase = phase;
        else this.live.set(e.stage, { stage: e.stage, phase, started: Date.now(), last: "" });
        this.ensureTimer();
        break;
      }
      case "log": {
        const l = this.live.get(e.stage);
        if (l) l.last = e.line;
        this.scroll(`${kleur.cyan(`[${e.stage}]`)} ${e.line}`);
        return;
      }
      case "note":
        this.scroll(`${e.stage ? kleur.cyan(`[${e.stage}]`) + " " : ""}${kleur.yellow(e.message)}`);
        return;
      case "stage-cached":
        this.scroll(`${kleur.green("=")} ${e.stage} ${kleur.gray("cached")}`);
        return;
      case "stage-done":
        this.live.delete(e.stage);
        this.scroll(`${kleur.green("✓")} ${e.stage} ${kleur.gray(describeDone(e))}`);
        return;
      case "stage-failed":
        this.live.delete(e.stage);
        this.scroll(
          e.interrupted
            ? `${kleur.yellow("■")} ${e.stage} ${kleur.yellow(`interrupted after ${formatDuration(e.ms)}`)}`
            : `${kleur.red("✗")} ${e.stage} ${kleur.red(`failed after ${formatDuration(e.ms)}`)}`,
        );
        return;
      case "transfer": {
        // A pull shows on the line of the stage whose base it is; a push has a line of its own.
        const key = e.stage ?? `${e.direction} ${e.ref}`;
        if (e.stage === undefined && e.done === e.total) {
          this.live.delete(key);
          this.scroll(`${kleur.green("↑")} ${transferLine(e)}`);
          return;
        }
        const counts = kleur.cyan(formatTransfer(e.done, e.total, e.bytesPerSecond));
        const phase = e.stage ? `${e.direction} ${e.ref} ${counts}` : `${e.ref} ${counts}`;
        const l = this.live.get(key);
        if (l) l.phase = phase;
        else this.live.set(key, { stage: e.stage ?? e.direction, phase, started: Date.now(), last: "" });
        this.ensureTimer();
        break;
      }
      case "compress": {
        let c = this.compressing.get(e.stage);
        if (!c) this.compressing.set(e.stage, (c = { format: e.format, started: e.started, layers: new Map() }));
        c.layers.set(e.layer, { done: e.done, total: e.total });
        if (e.done >= e.total) {
          if ([...c.layers.values()].every((l) => l.done >= l.total)) this.compressing.delete(e.stage);
          this.scroll(`${kleur.green("✓")} ${e.stage} ${kleur.gray(describeCompressed(e))}`);
          return;
        }
        this.ensureTimer();
        break;
      }
      case "output":
        return;
    }
    this.redraw();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.redraw(), 200);
    this.timer.unref();
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }

  /** Prints a line above the live region, then redraws the live lines under it. */
  private scroll(text: string): void {
    this.clear();
    this.out.write(truncate(text, this.width()) + "\n");
    this.draw();
  }

  private redraw(): void {
    this.clear();
    this.draw();
  }

  private width(): number {
    return Math.max(20, (this.out.columns || 100) - 1);
  }

  private draw(): void {
    const now = Date.now();
    const width = this.width();
    let lines = "";
    for (const l of this.live.values()) {
      const head = `${kleur.yellow("●")} ${kleur.bold(l.stage)} ${l.phase} ${kleur.gray(formatDuration(now - l.started))}`;
      lines += truncate(l.last ? `${head} ${kleur.gray(l.last)}` : head, width) + "\n";
    }
    for (const [stage, c] of this.compressing) {
      let done = 0;
      let total = 0;
      for (const l of c.layers.values()) {
        done += l.done;
        total += l.total;
      }
      const ms = now - c.started;
      const head = `${kleur.yellow("●")} ${kleur.bold(stage)} compress ${c.format} ${kleur.cyan(formatTransfer(done, total, (done / Math.max(ms, 1)) * 1000))}`;
      lines += truncate(`${head} ${kleur.gray(formatDuration(ms))}`, width) + "\n";
    }
    this.out.write(lines);
    this.drawn = this.live.size + this.compressing.size;
  }
}

/** Cuts a line to the terminal width, counting visible characters only (colour codes are free). */
function truncate(text: string, width: number): string {
  let visible = 0;
  let out = "";
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\x1b") {
      const m = /^\x1b\[[0-9;]*m/.exec(text.slice(i));
      if (m) {
        out += m[0];
        i += m[0].length - 1;
        continue;
      }
    }
    if (visible >= width) {
      out += "…\x1b[0m";
      break;
    }
    out += text[i];
    visible++;
  }
  return out;
}
