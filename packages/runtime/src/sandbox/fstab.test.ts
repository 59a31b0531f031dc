import { test } from "node:test";
import assert from "node:assert/strict";
import { fstabLine } from "./fstab.ts";

test("fstab fields escape blanks, backslashes and # as libmount's octal escapes", () => {
  assert.equal(fstabLine("/a b/c\td\ne", "/x\\y#z", "none", "bind,ro"), "/a\\040b/c\\011d\\012e /x\\134y\\043z none bind,ro 0 0");
  assert.equal(fstabLine("tmpfs", "/r/run/secrets", "tmpfs", "mode=0755,size=16m"), "tmpfs /r/run/secrets tmpfs mode=0755,size=16m 0 0");
});

test("an empty fstab field is refused rather than shifting the columns", () => {
  assert.throws(() => fstabLine("", "/t", "none", "bind"));
});
