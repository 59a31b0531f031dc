import { test } from "node:test";
import assert from "node:assert/strict";
import { findCause, UserError } from "./errors.ts";

function systemError(code: string, syscall?: string): Error {
  return Object.assign(new Error(`${code}: ${syscall ?? "write"}`), { code, syscall });
}

test("findCause finds a system error wrapped by ours, and the outermost match first", () => {
  const full = systemError("ENOSPC");
  const wrapped = new UserError("extracting layer sha256:1", { cause: new Error("copying", { cause: full }) });
  assert.equal(findCause(wrapped, (c) => c.code === "ENOSPC"), full);
  const outer = systemError("EIO");
  const both = Object.assign(new Error("outer", { cause: systemError("EIO", "read") }), { code: "EIO" });
  assert.equal(findCause(both, (c) => c.code === "EIO")?.message, both.message);
  assert.equal(findCause(outer, (c) => c.code === "ENOSPC"), undefined);
});

test("findCause stops after five errors and at a cause that is not an Error", () => {
  let deep: Error = systemError("ENOMEM");
  for (let i = 0; i < 5; i++) deep = new Error(`wrap ${i}`, { cause: deep });
  assert.equal(findCause(deep, (c) => c.code === "ENOMEM"), undefined);
  const plain = new Error("top", { cause: { code: "ENOSPC" } });
  assert.equal(findCause(plain, (c) => c.code === "ENOSPC"), undefined);
  assert.equal(findCause("ENOSPC", () => true), undefined);
});
