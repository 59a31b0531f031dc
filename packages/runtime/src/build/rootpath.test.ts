import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, symlink, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveInRoot, mkdirInRoot } from "./rootpath.ts";

test("resolveInRoot keeps absolute and .. symlinks inside the root", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "mstage-rootpath-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, "usr/bin"), { recursive: true });
  await symlink("usr/bin", join(root, "bin"));
  await symlink("/etc", join(root, "escape"));
  await symlink("../../../../..", join(root, "up"));
  assert.equal(await resolveInRoot(root, "/bin/sh"), join(root, "usr/bin/sh"));
  assert.equal(await resolveInRoot(root, "/escape/passwd"), join(root, "etc/passwd"));
  assert.equal(await resolveInRoot(root, "/up/etc/x"), join(root, "etc/x"));
  assert.equal(await resolveInRoot(root, "/../../x"), join(root, "x"));
  assert.equal(await resolveInRoot(root, "/bin"), join(root, "bin"));
  assert.equal(await resolveInRoot(root, "/bin", { followLast: true }), join(root, "usr/bin"));
});

test("mkdirInRoot creates missing parents through symlinks, inside the root", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "mstage-rootpath-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, "usr"));
  await symlink("/usr", join(root, "link"));
  const p = await mkdirInRoot(root, "/link/local/app", process.getuid!(), process.getgid!());
  assert.equal(p, join(root, "usr/local/app"));
  assert.ok((await stat(p)).isDirectory());
});
