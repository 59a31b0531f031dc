// test/helpers/rootfs.ts makes the Debian rootfs once per machine under a lock dir; a run that died
// holding it must not leave every later run waiting forever.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lockAbandoned } from "./helpers/rootfs.ts";

test("a cache lock is taken over when its owner died, is ownerless for long, or is stale; never while its owner lives", () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-rootfs-lock-"));
  try {
    const ns = readlinkSync("/proc/self/ns/pid");
    const lock = (name: string, owner?: object, ageMs = 0) => {
      const p = join(dir, name);
      mkdirSync(p);
      if (owner) writeFileSync(join(p, "owner"), JSON.stringify(owner));
      const t = new Date(Date.now() - ageMs);
      utimesSync(p, t, t);
      return p;
    };
    const dead = spawnSync("true").pid!;
    assert.equal(lockAbandoned(lock("live", { pid: process.pid, ns })), false, "the owner is alive");
    assert.equal(lockAbandoned(lock("dead", { pid: dead, ns })), true, "the owner exited");
    assert.equal(lockAbandoned(lock("other-ns", { pid: dead, ns: "pid:[1]" })), false, "a pid of another namespace says nothing");
    assert.equal(lockAbandoned(lock("fresh-ownerless")), false, "just made, owner file not written yet");
    assert.equal(lockAbandoned(lock("old-ownerless", undefined, 5 * 60_000)), true, "no owner file for minutes");
    assert.equal(lockAbandoned(lock("stale", { pid: process.pid, ns }, 11 * 60_000)), true, "older than any build");
    assert.equal(lockAbandoned(join(dir, "released")), false, "gone meanwhile: try again");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
