// How an error reaches the user: a UserError as its message (and detail), anything else as a bug
// with its stack. `-v` adds the stack to user errors too.
import kleur from "kleur";
import { UserError } from "@mstage/core";

export function renderError(e: unknown, o: { verbose: boolean; color: boolean }): string {
  kleur.enabled = o.color && process.stderr.isTTY === true;
  if (e instanceof UserError) {
    let out = `${kleur.red("error")}: ${e.message}\n`;
    if (e.detail) out += e.detail.replace(/\n?$/, "\n");
    if (o.verbose && e.stack) out += kleur.gray(e.stack) + "\n";
    return out;
  }
  const exhausted = exhaustion(e);
  if (exhausted) return `${kleur.red("error")}: ${exhausted}\n`;
  const err = e instanceof Error ? e : new Error(String(e));
  return `${kleur.red("internal error")} (a bug in mstage, please report it): ${err.message}\n${err.stack ?? ""}\n`;
}

/**
 * The machine ran out of memory, processes or file descriptors while mstage worked: the user's
 * environment, not a bug. Its message and what to do, or undefined for any other error.
 */
function exhaustion(e: unknown): string | undefined {
  for (let cur = e, depth = 0; cur instanceof Error && depth < 4; cur = cur.cause, depth++) {
    const { code, syscall } = cur as NodeJS.ErrnoException;
    const processes = code === "EAGAIN" && syscall?.startsWith("spawn") === true;
    if (code === "ENOMEM" || processes) {
      return `the system ran out of ${processes ? "processes" : "memory"} (${cur.message}); free some, or build fewer stages at once with --jobs 1, then run again`;
    }
    if (code === "EMFILE" || code === "ENFILE") {
      return `too many open files (${cur.message}); raise the limit (ulimit -n) or build fewer stages at once with --jobs 1, then run again`;
    }
  }
  return undefined;
}
