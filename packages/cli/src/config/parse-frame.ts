// Parses one V8 stack line ("at f (file:///x/images.ts:3:7)") into a location.
import { fileURLToPath } from "node:url";
import type { SourceLocation } from "@mstage/core";

const FRAME = /\(?((?:file:\/\/|\/)[^()]*?):(\d+):(\d+)\)?\s*$/;

export function parseFrame(line: string): SourceLocation | undefined {
  const m = FRAME.exec(line);
  if (!m) return undefined;
  const file = m[1].startsWith("file://") ? fileURLToPath(m[1]) : m[1];
  return { file, line: Number(m[2]), column: Number(m[3]) };
}
