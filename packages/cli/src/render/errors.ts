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
  const err = e instanceof Error ? e : new Error(String(e));
  return `${kleur.red("internal error")} (a bug in mstage, please report it): ${err.message}\n${err.stack ?? ""}\n`;
}
