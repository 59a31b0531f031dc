// Where in the user's config an API function was called. The loader enables source maps, so the
// frame of the bundled config maps back to the user's `images.ts` line.
import { fileURLToPath } from "node:url";
import type { SourceLocation } from "../errors.ts";

/** The location of the code that called `fn` (the frames of `fn` and above are cut). */
export function callerLocation(fn: Function): SourceLocation | undefined {
  const holder: { stack?: string } = {};
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 2;
  try {
    Error.captureStackTrace(holder, fn);
  } finally {
    Error.stackTraceLimit = limit;
  }
  const line = holder.stack?.split("\n").find((l) => l.trimStart().startsWith("at "));
  return line ? parseFrame(line) : undefined;
}

const FRAME = /\(?((?:file:\/\/|\/)[^()]*?):(\d+):(\d+)\)?\s*$/;

/** Parses one V8 stack line ("at f (file:///x/images.ts:3:7)") into a location. */
export function parseFrame(line: string): SourceLocation | undefined {
  const m = FRAME.exec(line);
  if (!m) return undefined;
  const file = m[1].startsWith("file://") ? fileURLToPath(m[1]) : m[1];
  return { file, line: Number(m[2]), column: Number(m[3]) };
}
