// The project's own small files (images.lock, .mstage/state.json, the stat cache): written whole
// through a temp file and a rename, so a crash or a second mstage never leaves half a file.
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

let seq = 0;

/** Writes `data` to `file` atomically, creating its directory if needed. */
export function writeFileAtomicSync(file: string, data: string): void {
  mkdirSync(dirname(file), { recursive: true });
  // pid + a counter: two processes, or two writes in one process, never share a temp file.
  const tmp = `${file}.${process.pid}.${++seq}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
