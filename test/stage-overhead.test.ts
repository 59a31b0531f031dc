// A stage's fixed cost is mostly the processes mstage starts for it (issue 16: 2000 stages of one
// `echo` each). Counted here through logging wrappers of mount and setfattr put first on PATH
// (mstage looks its tools up on the caller's PATH, and the step's setup runs with it): a stage with
// one `run` mounts its overlay and makes every mount of its step with one `mount --all`, and nothing
// else (the build mounts one tmpfs for all its stages' scratch files); its /dev spawns nothing and its upper dir needs no xattr removed before it becomes the
// layer; its step's host name "mstage" (checked by the first step) is the build's own, so no
// `hostname` runs for it. Its overlay is mounted volatile (no sync of the store's filesystem at its unmount), which
// the first step checks, and its commit fsyncs its few files instead of syncing the whole
// filesystem (sync -f would also wait for every other dirty file there). The step helpers' ldd is
// asked while the build plans, before the first overlay is mounted, not when the first step starts.
// (umount is not wrapped: the step runs the host's umount binary through its loader, which ldd
// must be able to read.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { expectOk, projectWith, testUsers } from "./up-harness.ts";

const STAGES = 4;

function images(): string {
  const lines = [`import { local, scratch, stage } from "mstage";`, `const shell = ["/bin/busybox", "sh", "-c"];`];
  lines.push(`const s0 = stage("s0", { from: scratch(), copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) }, shell, run: "/bin/busybox grep -q ' - overlay .*volatile' /proc/self/mountinfo && [ \\"$(/bin/busybox hostname)\\" = mstage ] && /bin/busybox echo 0 > /s0" });`);
  for (let i = 1; i < STAGES; i++) lines.push(`const s${i} = stage("s${i}", { from: s${i - 1}, shell, run: "/bin/busybox echo ${i} > /s${i}" });`);
  lines.push(`export const last = s${STAGES - 1};`);
  return lines.join("\n") + "\n";
}

for (const user of testUsers()) {
  test(`a stage with one run step starts no mount, setfattr or sync beyond its overlay and its step's one mount --all (${user.name})`, { timeout: 5 * 60_000 }, async (t) => {
    if (user.skip) return t.skip(user.skip);
    if (!existsSync("/bin/busybox")) return t.skip("busybox-static is not installed (/bin/busybox): run .ci/setup");
    const bin = mkdtempSync(join(tmpdir(), "mstage-overhead-"));
    t.after(() => rmSync(bin, { recursive: true, force: true }));
    chmodSync(bin, 0o777);
    const log = join(bin, "calls.log");
    writeFileSync(log, "");
    chmodSync(log, 0o666);
    for (const tool of ["mount", "setfattr", "sync", "ldd", "hostname"]) {
      const real = execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8", env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } }).trim();
      writeFileSync(join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> ${log}\nexec ${real} "$@"\n`);
      chmodSync(join(bin, tool), 0o755);
    }
    const { mstage } = projectWith(t, user.name, "overhead", images());
    const path = `${bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
    expectOk(await mstage(["up", "--sbom=false", "-q"], { env: { PATH: path } }), "up");
    const calls = readFileSync(log, "utf8").trim().split("\n").filter(Boolean);
    const count = (re: RegExp) => calls.filter((c) => re.test(c)).length;
    const overlays = count(/^mount -t overlay /);
    assert.equal(overlays, STAGES, `one overlay per stage:\n${calls.join("\n")}`);
    assert.equal(count(/^mount --all|^mount -n --all/), STAGES, `one mount --all per step:\n${calls.join("\n")}`);
    assert.equal(count(/^mount -t tmpfs .* mstage-scratch /), 1, `one scratch tmpfs for the whole build:\n${calls.join("\n")}`);
    assert.equal(count(/^mount /), 2 * STAGES + 1, `no other mount:\n${calls.join("\n")}`);
    assert.equal(count(/^hostname /), 1, `the build names its namespace "mstage" once, and its steps start with that name:\n${calls.join("\n")}`);
    assert.equal(count(/^setfattr /), 0, `no xattr to remove from an upper dir:\n${calls.join("\n")}`);
    assert.equal(count(/^sync /), 0, `a small layer is fsynced file by file, no syncfs:\n${calls.join("\n")}`);
    const firstOverlay = calls.findIndex((c) => /^mount -t overlay /.test(c));
    assert.ok(calls.slice(0, firstOverlay).filter((c) => c.startsWith("ldd ")).length === 2, `ldd of setpriv and umount before the first overlay:\n${calls.join("\n")}`);
  });
}

// A stage's result is recorded once its layer is durable, but the stage after it does not wait for
// that: it builds on the layer at once. The first stage writes more files than are fsynced one by one,
// so its layer is made durable by a sync -f, which the wrapper holds until the next stage has mounted
// its overlay (a build that waited for the sync would stall there, up to a minute, and fail below).
for (const user of testUsers()) {
  test(`the next stage builds while a stage's layer is being made durable (${user.name})`, { timeout: 5 * 60_000 }, async (t) => {
    if (user.skip) return t.skip(user.skip);
    if (!existsSync("/bin/busybox")) return t.skip("busybox-static is not installed (/bin/busybox): run .ci/setup");
    const bin = mkdtempSync(join(tmpdir(), "mstage-durable-"));
    t.after(() => rmSync(bin, { recursive: true, force: true }));
    chmodSync(bin, 0o777);
    const log = join(bin, "calls.log");
    writeFileSync(log, "");
    chmodSync(log, 0o666);
    const real = (tool: string) => execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8", env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } }).trim();
    writeFileSync(join(bin, "mount"), `#!/bin/sh\necho "mount $*" >> ${log}\nexec ${real("mount")} "$@"\n`);
    const overlays = `grep -c '^mount -t overlay ' ${log}`;
    writeFileSync(join(bin, "sync"), [
      "#!/bin/sh",
      `if mkdir ${join(bin, "first-sync")} 2>/dev/null; then first=first; i=0; while [ "$(${overlays})" -lt 2 ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i + 1)); done; fi`,
      `echo "sync \${first:-later} $(${overlays}) $*" >> ${log}`,
      `exec ${real("sync")} "$@"`,
      "",
    ].join("\n"));
    for (const tool of ["mount", "sync"]) chmodSync(join(bin, tool), 0o755);
    const { mstage } = projectWith(t, user.name, "durable", [
      `import { local, scratch, stage } from "mstage";`,
      `const shell = ["/bin/busybox", "sh", "-c"];`,
      `const s0 = stage("s0", { from: scratch(), copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) }, shell, run: "/bin/busybox mkdir /many && i=0; while [ $i -lt 600 ]; do /bin/busybox echo $i > /many/$i; i=$((i + 1)); done" });`,
      `export const s1 = stage("s1", { from: s0, shell, run: "/bin/busybox echo 1 > /s1" });`,
      "",
    ].join("\n"));
    const path = `${bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
    expectOk(await mstage(["up", "--sbom=false", "-q"], { env: { PATH: path } }), "up");
    const calls = readFileSync(log, "utf8").trim().split("\n").filter(Boolean);
    const first = calls.find((c) => c.startsWith("sync first "));
    assert.ok(first, `the first stage's layer is made durable by a sync -f:\n${calls.join("\n")}`);
    assert.match(first, /^sync first 2 -f /, `the second stage mounted its overlay while the first one's sync ran:\n${calls.join("\n")}`);
    // And both results were recorded: a second up builds nothing.
    const again = await mstage(["up", "--sbom=false"], { env: { PATH: path } });
    expectOk(again, "second up");
    assert.match(again.stdout + again.stderr, /0 built|nothing to (do|build)|up to date/i, again.stdout + again.stderr);
  });
}
