// A child process's stdout that keeps every byte until it is read. Node resumes a child's stdio
// streams when the child exits (child_process' flushStdio), and a stream nobody has started to read
// then flows into nothing: a tool that finishes before its reader's first await is over (zstd on a
// small layer, while the blob file is being opened) would hand back an empty output and exit 0.
// Piping into a PassThrough at once makes the pipe the reader, so the bytes wait in it instead.
import type { ChildProcess } from "node:child_process";
import { PassThrough, type Readable } from "node:stream";

export function heldStdout(child: ChildProcess): Readable {
  if (!child.stdout) throw new Error("heldStdout: the child was spawned without a stdout pipe");
  return child.stdout.pipe(new PassThrough({ highWaterMark: 1 << 20 }));
}
