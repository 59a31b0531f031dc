// Stack frames of errors thrown by the user's config: which belong to the user, and a code frame.
import { readFileSync } from "node:fs";
import { parseFrame, type SourceLocation } from "@mstage/core";

/** The first frame that lies in one of the user's config files. */
export function firstUserFrame(stack: string, userFiles: Set<string>): SourceLocation | undefined {
  for (const line of stack.split("\n")) {
    const at = parseFrame(line);
    if (at && userFiles.has(at.file)) return at;
  }
  return undefined;
}

/**
 * The "at …" lines worth showing: the user's files and third-party packages they called; not
 * mstage's own frames or node internals (all of them with `verbose`).
 */
export function filterStack(stack: string, userFiles: Set<string>, verbose: boolean): string {
  const lines = stack.split("\n").filter((l) => l.trimStart().startsWith("at "));
  const kept = verbose
    ? lines
    : lines.filter((l) => {
        const at = parseFrame(l);
        if (!at) return false;
        if (userFiles.has(at.file)) return true;
        return at.file.includes("/node_modules/") && !/\/node_modules\/(mstage|@mstage)\//.test(at.file);
      });
  return kept.map((l) => "    " + l.trim()).join("\n");
}

/** The source line at a location (1-based line and column), with a caret under the column. */
export function codeFrame(at: SourceLocation): string | undefined {
  try {
    const text = readFileSync(at.file, "utf8").split(/\r?\n/)[at.line - 1];
    return text === undefined ? undefined : frameOf(at.line, at.column, text);
  } catch {
    return undefined;
  }
}

export function frameOf(line: number, column: number, text: string): string {
  const n = String(line);
  return `  ${n} | ${text}\n  ${" ".repeat(n.length)} | ${" ".repeat(Math.max(0, column - 1))}^`;
}
