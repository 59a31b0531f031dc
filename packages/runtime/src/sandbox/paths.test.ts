import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, statSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { existingInRoot, hostPathInRoot, mkdirInRoot, resolveInRoot } from "./paths.ts";

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

test("hostPathInRoot follows parent symlinks inside the root, and the last one only when asked", () => {
  const root = mkdtempSync(join(tmpdir(), "paths-"));
  mkdirSync(join(root, "usr/bin"), { recursive: true });
  symlinkSync("usr/bin", join(root, "bin"));
  symlinkSync("/etc", join(root, "escape"));
  symlinkSync("../../../../..", join(root, "up"));
  assert.equal(hostPathInRoot(root, "/bin/sh"), join(root, "usr/bin/sh"));
  assert.equal(hostPathInRoot(root, "/escape/passwd"), join(root, "etc/passwd"));
  assert.equal(hostPathInRoot(root, "/up/etc/x"), join(root, "etc/x"));
  assert.equal(hostPathInRoot(root, "/../../x"), join(root, "x"));
  assert.equal(hostPathInRoot(root, "/bin"), join(root, "bin"));
  assert.equal(hostPathInRoot(root, "/bin", { followLast: true }), join(root, "usr/bin"));
  assert.equal(hostPathInRoot(root, "relative/path"), join(root, "relative/path"));
});

test("a .. below a missing name cancels it; one more climbs back and resolves symlinks again", () => {
  const root = rootfs();
  assert.deepEqual(resolveInRoot(root, "/etc/new/../passwd"), { existing: join(root, "etc/passwd"), missing: [] });
  assert.equal(hostPathInRoot(root, "/etc/a/b/../../../abs/passwd"), join(root, "etc/passwd"));
  assert.equal(hostPathInRoot(root, "/new/../../../.."), root);
});

test("mkdirInRoot gives new directories 0755 and the owner, and refuses a file in the way", () => {
  const root = rootfs();
  const old = process.umask(0o077);
  try {
    const r = mkdirInRoot(root, "/abs/app/data", { uid: process.getuid!(), gid: process.getgid!() });
    assert.equal(r.dir, join(root, "etc/app/data"));
    assert.equal(statSync(r.dir).mode & 0o777, 0o755);
  } finally {
    process.umask(old);
  }
  assert.throws(() => mkdirInRoot(root, "/etc/passwd"), /exists and is not a directory/);
});
