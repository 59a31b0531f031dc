import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveOwner, resolveUser } from "./passwd.ts";

function rootfs(): string {
  const root = mkdtempSync(join(tmpdir(), "passwd-"));
  mkdirSync(join(root, "etc"));
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\nbuilder:x:1000:1000::/home/builder:/bin/sh\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\nbuilder:x:1000:\nstaff:x:50:builder\nwheel2:x:51:root,builder\n");
  return root;
}

test("a name resolves through the image's /etc/passwd, with its primary group and home", () => {
  assert.deepEqual(resolveUser(rootfs(), "_apt"), { uid: 42, gid: 65534, home: "/nonexistent", groups: [] });
});

test("a user alone gets the groups that list it as a member; name:group and uid:gid get none", () => {
  const root = rootfs();
  assert.deepEqual(resolveUser(root, "builder"), { uid: 1000, gid: 1000, home: "/home/builder", groups: [50, 51] });
  assert.deepEqual(resolveUser(root, "1000"), { uid: 1000, gid: 1000, home: "/home/builder", groups: [50, 51] });
  assert.deepEqual(resolveUser(root, "builder:staff"), { uid: 1000, gid: 50, home: "/home/builder", groups: [] });
  assert.deepEqual(resolveUser(root, "1000:7"), { uid: 1000, gid: 7, home: "/home/builder", groups: [] });
});

test("an owner resolves like BuildKit's --chown: a name's primary group, a bare uid as its own gid", () => {
  const root = rootfs();
  assert.deepEqual(resolveOwner(root, "builder"), { uid: 1000, gid: 1000 });
  assert.deepEqual(resolveOwner(root, "builder:staff"), { uid: 1000, gid: 50 });
  assert.deepEqual(resolveOwner(root, "_apt"), { uid: 42, gid: 65534 });
  assert.deepEqual(resolveOwner(root, "42"), { uid: 42, gid: 42 });
  assert.deepEqual(resolveOwner(root, "42:staff"), { uid: 42, gid: 50 });
  assert.throws(() => resolveOwner(root, "ghost"), { name: "UserError", message: /user "ghost" is not in the destination's \/etc\/passwd/ });
  assert.throws(() => resolveOwner(root, "builder:ghosts"), { name: "UserError", message: /group "ghosts" is not in the destination's \/etc\/group/ });
});

test("a numeric uid the image does not know runs with gid 0 and no supplementary groups", () => {
  assert.deepEqual(resolveUser(rootfs(), "4242"), { uid: 4242, gid: 0, home: "/", groups: [] });
});

test("an unknown name or group is a UserError that says what to do", () => {
  const root = rootfs();
  assert.throws(() => resolveUser(root, "nobody-here"), { name: "UserError", message: /user "nobody-here" is not in the image's \/etc\/passwd; create it in an earlier step or use a numeric uid/ });
  assert.throws(() => resolveUser(root, "builder:wheel"), { name: "UserError", message: /group "wheel" is not in the image's \/etc\/group/ });
});
