import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { existingInRoot, mkdirInRoot, resolveInRoot } from "./paths.ts";

function rootfs(): string {
  const root = mkdtempSync(join(tmpdir(), "paths-"));
  mkdirSync(join(root, "etc"));
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  symlinkSync("/etc", join(root, "abs"));
  symlinkSync("../../../../etc", join(root, "dotdot"));
  symlinkSync("/", join(root, "slash"));
  symlinkSync("loop2", join(root, "loop1"));
  symlinkSync("loop1", join(root, "loop2"));
  return root;
}

test("absolute and .. symlinks resolve inside the root, never to the host's files", () => {
  const root = rootfs();
  assert.equal(existingInRoot(root, "/abs/passwd"), join(root, "etc/passwd"));
  assert.equal(existingInRoot(root, "/dotdot/passwd"), join(root, "etc/passwd"));
  assert.equal(existingInRoot(root, "/slash/../../etc/passwd"), join(root, "etc/passwd"));
  assert.equal(existingInRoot(root, "/../../../etc/hostname"), undefined);
});

test("a missing tail is reported as plain names below the deepest existing directory", () => {
  const root = rootfs();
  assert.deepEqual(resolveInRoot(root, "/abs/new/dir"), { existing: join(root, "etc"), missing: ["new", "dir"] });
});

test("a symlink loop is an error, not a hang", () => {
  assert.throws(() => resolveInRoot(rootfs(), "/loop1/x"), /too many levels of symbolic links/);
});

test("mkdirInRoot creates through an absolute symlink inside the root and reports what it made", () => {
  const root = rootfs();
  const r = mkdirInRoot(root, "/slash/work/src");
  assert.equal(r.dir, join(root, "work/src"));
  assert.deepEqual(r.created, [join(root, "work"), join(root, "work/src")]);
  assert.ok(existsSync(join(root, "work/src")));
  assert.ok(!existsSync("/work/src"), "nothing was created on the host");
});
