// Opt-in (MSTAGE_SLOW_TESTS=1): a debian() base for linux/arm64, bootstrapped by mmdebstrap under
// qemu-user-static emulation, and a run on it. Every maintainer script runs emulated, so this takes
// minutes (about 4 on a loaded 2-core machine), more than the default suite can afford.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { arm64Emulation } from "./helpers/multiarch.ts";
import { expectOk, mstageAs, testUsers, tool, unpack, userDir, writeAs } from "./up-harness.ts";

const skip =
  process.env.MSTAGE_SLOW_TESTS !== "1"
    ? "slow (minutes of emulated dpkg): run with MSTAGE_SLOW_TESTS=1"
    : (arm64Emulation() ?? (["mmdebstrap", "arch-test", "skopeo", "umoci"].filter((t) => !tool(t)).map((t) => `missing ${t}: run .ci/setup`)[0]));

test("debian() for linux/arm64 is bootstrapped under emulation, and its run sees arm64", { skip, timeout: 20 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const dir = userDir(user, "platform-debian");
  const store = userDir(user, "platform-debian-store");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  t.after(() => rmSync(store, { recursive: true, force: true }));
  writeAs(user, join(dir, "images.ts"), `import { debian, stage } from "mstage";
export const armdeb = stage("armdeb", {
  platform: "linux/arm64",
  from: debian({ suite: "bookworm" }),
  run: "dpkg --print-architecture > /arch && uname -m >> /arch",
});
`);
  const mstage = mstageAs(user, dir, store);
  const started = Date.now();
  expectOk(await mstage(["up", "--progress", "plain"]), "up");
  t.diagnostic(`debian() for linux/arm64 under emulation: ${Math.round((Date.now() - started) / 1000)} s`);
  const lock = JSON.parse(readFileSync(join(dir, "images.lock"), "utf8"));
  assert.ok(lock.debian["bookworm/minbase for linux/arm64"]?.packages["libc6:arm64"] ?? lock.debian["bookworm/minbase for linux/arm64"]?.packages.libc6, "images.lock pins the arm64 base under its own key");
  const config = JSON.parse(execFileSync("skopeo", ["inspect", "--config", `oci:${join(dir, "oci")}:armdeb`], { encoding: "utf8" }));
  assert.equal(config.architecture, "arm64");
  const bundle = unpack(join(dir, "oci"), "armdeb");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  assert.equal(readFileSync(join(bundle, "rootfs/arch"), "utf8"), "arm64\naarch64\n");
  assert.match(execFileSync("file", ["-L", join(bundle, "rootfs/bin/dpkg")], { encoding: "utf8" }), /ARM aarch64/);
});
