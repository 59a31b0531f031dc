// Without a subordinate id range (issue 3, item 1): mstage maps only the invoker, says once how to
// add a range, and still builds what needs no other user. Runs as mstage-norange (.ci/setup).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { noRangeUser, runAs } from "./helpers/users.ts";
import { runHarness, HARNESS, REPO } from "./helpers/sandbox-harness.ts";

const user = noRangeUser();
const CLI = `${REPO}packages/cli/bin/mstage.mjs`;
const USERMOD = new RegExp(`sudo usermod --add-subuids (\\d+)-(\\d+) --add-subgids \\1-\\2 ${user.name}`);

describe(`sandbox as ${user.name}, who has no subordinate id range`, { skip: user.skip }, () => {
  test("a root step on a single-owner rootfs works, and the note saying how to add a range is printed once", async () => {
    const r = await runHarness(user.name, {
      base: "busybox",
      steps: [{ argv: ["/bin/sh", "-c", "id -u; echo made > /made; chown 0:0 /made"] }, { argv: ["/bin/sh", "-c", "cat /made"] }],
    });
    assert.deepEqual(r.steps.map((s) => [s.exitCode, s.stdout]), [[0, "0\n"], [0, "made\n"]]);
    assert.deepEqual(r.upper, ["/made"]);
    const notes = r.stderrLog.split("\n").filter((l) => l.startsWith("note: "));
    assert.equal(notes.length, 1, r.stderrLog);
    assert.match(notes[0], /has no subordinate id range/);
    assert.match(notes[0], USERMOD);
  });

  test("running a step as another user fails with a message naming the user and the usermod fix", async () => {
    const scenario = { base: "busybox", steps: [{ argv: ["/bin/sh", "-c", "id"], user: "builder" }] };
    const r = await runAs(user.name, [process.execPath, "--import", "tsx", HARNESS, JSON.stringify(scenario)], { cwd: REPO });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot run as user "builder" \(uid 1000, gid 1000\): mstage-norange has no subordinate id range, so only root exists in the build namespace/);
    assert.match(r.stderr, /add a range with: sudo usermod/);
  });

  test("mstage doctor flags the missing range as a limitation with its fix, and exits 0", { skip: existsSync(CLI) ? undefined : "the CLI is not built: run `pnpm build`" }, async () => {
    const r = await runAs(user.name, [process.execPath, CLI, "doctor", "--no-color"], { cwd: "/" });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /! subordinate id range: mstage-norange has none/);
    assert.match(r.stdout, USERMOD);
    assert.match(r.stdout, /✔ overlayfs with userxattr/);
  });
});
