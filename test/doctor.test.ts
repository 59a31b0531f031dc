// `mstage doctor` (issue 3, item 6), through the built CLI, as root and as mstage-test.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { testUsers, runAs } from "./helpers/users.ts";

const REPO = new URL("..", import.meta.url).pathname;
const CLI = `${REPO}packages/cli/bin/mstage.mjs`;

for (const user of testUsers()) {
  describe(`mstage doctor as ${user.name}`, { skip: user.skip }, () => {
    test("passes every required check on this machine and exits 0", { skip: existsSync(CLI) ? undefined : "the CLI is not built: run `pnpm build`" }, async () => {
      const r = await runAs(user.name, [process.execPath, CLI, "doctor", "--no-color"], { cwd: "/" });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      for (const name of ["unprivileged user namespaces", "subordinate id range", "overlayfs with userxattr", "pid/mount/ipc/uts namespaces", 'network: "none"', "step containment (capability bounding set, read-only binds)"]) {
        assert.match(r.stdout, new RegExp(`✔ ${name.replace(/[/()]/g, "\\$&")}`), r.stdout);
      }
      assert.match(r.stdout, /ready for rootless builds\.|ready to build/);
      // The build compiled the native lister beside the bundle (.ci/setup installs gcc), and the CLI loads it.
      assert.match(r.stdout, /✔ native directory lister: loaded \S+\/packages\/cli\/dist\/listdir\.linux-x64\.node/, r.stdout);
    });

    test("warns, without failing, when the native lister it is given cannot be loaded, and says what to do", { skip: existsSync(CLI) ? undefined : "the CLI is not built: run `pnpm build`" }, async () => {
      const r = await runAs(user.name, [process.execPath, CLI, "doctor", "--no-color"], { cwd: "/", env: { MSTAGE_LISTDIR: "/etc/hostname" } });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /! native directory lister: \/etc\/hostname could not be loaded: .*; plans and layer commits list directories with Node's fs \(and getfattr\) instead/, r.stdout);
      assert.match(r.stdout, /MSTAGE_LISTDIR=js uses Node's fs without this warning/);
      const js = await runAs(user.name, [process.execPath, CLI, "doctor", "--no-color"], { cwd: "/", env: { MSTAGE_LISTDIR: "js" } });
      assert.match(js.stdout, /✔ native directory lister: MSTAGE_LISTDIR=js; plans and layer commits list directories with Node's fs \(and getfattr\) instead/, js.stdout);
    });

    test("fails with exit 1 and prints the fix when the store cannot be used", { skip: existsSync(CLI) ? undefined : "the CLI is not built: run `pnpm build`" }, async () => {
      const r = await runAs(user.name, [process.execPath, CLI, "doctor", "--no-color", "--store", "/dev/null/mstage-store"], { cwd: "/" });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /✖ store directory: cannot create \/dev\/null\/mstage-store/);
      assert.match(r.stdout, /fix: pass --store DIR \(or set MSTAGE_STORE\) to a directory you can write/);
      assert.match(r.stdout, /1 required check failed/);
    });
  });
}
