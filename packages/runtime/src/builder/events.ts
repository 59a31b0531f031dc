// What the builder tells its caller while it works. The CLI renders these (live lines on a TTY,
// prefixed lines otherwise); the builder itself never prints.
import type { Digest } from "../oci/digest.ts";

/** How a stage ends up in this run. "config" = only image-config fields changed: nothing runs. */
export type StageOutcome = "built" | "cached" | "config";

export type BuildEvent =
  /** Work on a stage began (its dependencies are ready). */
  | { type: "stage-start"; stage: string; status: "new" | "rebuild" | "config" }
  /**
   * A stage moved to a new phase: "base", "copy", "run", "commit", … (shown on its live line), or
   * got further in it: `progress` says how far ("12/69 packages set up"), for the live line only.
   */
  | { type: "stage-phase"; stage: string; phase: string; progress?: string }
  /** One line of a step's output (no trailing newline). */
  | { type: "log"; stage: string; line: string; stream: "stdout" | "stderr" }
  /** Something worth saying that is not step output (skipped device nodes, lock updates, …). */
  | { type: "note"; stage?: string; message: string }
  /** A stage served from the store: nothing of it was touched. */
  | { type: "stage-cached"; stage: string }
  | { type: "stage-done"; stage: string; outcome: StageOutcome; ms: number; layers: number }
  /** `interrupted`: the build was stopped (Ctrl-C, SIGTERM), the stage itself did not fail. */
  | { type: "stage-failed"; stage: string; error: unknown; ms: number; interrupted?: boolean }
  /**
   * Bytes of an image pulled (for a stage's base) or pushed so far, of its total, and the rate:
   * at most every 200 ms, the last with done = total.
   */
  | { type: "transfer"; stage?: string; direction: "pull" | "push"; ref: string; done: number; total: number; bytesPerSecond: number }
  /**
   * A layer being compressed for an output or push: `done` of `total` uncompressed bytes, since
   * `started` (ms since the epoch). Sent a few times a second and once when the layer is done.
   */
  | { type: "compress"; stage: string; layer: Digest; format: "gzip" | "zstd"; done: number; total: number; started: number }
  /** An image written to an output. */
  | { type: "output"; dest: string; ref: string; digest: Digest; size: number };

export type BuildEventHandler = (e: BuildEvent) => void;

/**
 * Splits a stream of output chunks into lines, so each event carries one whole line. Carriage
 * returns (progress bars) keep only the text after the last one.
 */
export class LineSplitter {
  private partial = "";
  constructor(private readonly emit: (line: string) => void) {}
  push(chunk: string): void {
    const parts = (this.partial + chunk).split("\n");
    this.partial = parts.pop() ?? "";
    for (const p of parts) this.emit(lastSegment(p));
  }
  flush(): void {
    if (this.partial) this.emit(lastSegment(this.partial));
    this.partial = "";
  }
}

function lastSegment(line: string): string {
  const trimmed = line.replace(/\r+$/, "");
  const i = trimmed.lastIndexOf("\r");
  return i < 0 ? trimmed : trimmed.slice(i + 1);
}
