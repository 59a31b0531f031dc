// How an error reaches the user: a UserError as its message (and detail), anything else as a bug
// with its stack. `-v` adds the stack to user errors too.
import kleur from "kleur";
import { UserError, findCause, type SystemError } from "@mstage/core";

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
  const processes = (c: SystemError) => c.code === "EAGAIN" && c.syscall?.startsWith("spawn") === true;
  const ran = findCause(e, (c) => c.code === "ENOMEM" || processes(c));
  if (ran) {
    return `the system ran out of ${processes(ran) ? "processes" : "memory"} (${ran.message}); free some, or build fewer stages at once with --jobs 1, then run again`;
  }
  const files = findCause(e, (c) => c.code === "EMFILE" || c.code === "ENFILE");
  if (files) return `too many open files (${files.message}); raise the limit (ulimit -n) or build fewer stages at once with --jobs 1, then run again`;
  return undefined;
}
