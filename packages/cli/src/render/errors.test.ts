import assert from "node:assert/strict";
import { test } from "node:test";
import { renderError } from "./errors.ts";

const errno = (message: string, code: string, syscall: string) => Object.assign(new Error(message), { code, syscall });
const render = (e: unknown) => renderError(e, { verbose: false, color: false });

test("a machine out of memory, processes or file descriptors is the user's error, with what to do", () => {
  assert.equal(render(errno("spawn ENOMEM", "ENOMEM", "spawn")), "error: the system ran out of memory (spawn ENOMEM); free some, or build fewer stages at once with --jobs 1, then run again\n");
  assert.match(render(errno("spawn getfattr EAGAIN", "EAGAIN", "spawn getfattr")), /^error: the system ran out of processes \(spawn getfattr EAGAIN\)/);
  assert.match(render(new Error("committing a layer", { cause: errno("EMFILE: too many open files, open '/x'", "EMFILE", "open") })), /^error: too many open files \(EMFILE.*ulimit -n/);
});

test("anything else that is not a UserError is still a bug, with its stack", () => {
  assert.match(render(errno("read EAGAIN", "EAGAIN", "read")), /^internal error \(a bug in mstage, please report it\): read EAGAIN\n/);
  assert.match(render(new TypeError("x is undefined")), /^internal error .*x is undefined\nTypeError/);
});
