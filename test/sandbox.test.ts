// The rootless sandbox for `run` steps (issue 3, item 5), through the same calls the builder makes:
// reexecInUserNamespace → withRootfs → runStep. Each test runs as root and as the unprivileged
// mstage-test user (subordinate range from .ci/setup).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { testUsers, asUser } from "./helpers/users.ts";
import { runHarness, HARNESS, REPO } from "./helpers/sandbox-harness.ts";

const sh = (script: string) => ["/bin/sh", "-c", script];

for (const user of testUsers()) {
  describe(`sandbox as ${user.name}`, { skip: user.skip }, () => {
    test("a step sees its env, workdir and user, its output streams back and its exit code is returned", async () => {
      const r = await runHarness(user.name, {
        base: "busybox",
        steps: [
          { argv: sh('echo "$GREETING from $(pwd) as $(id -u):$(id -g) pid $$"; echo oops >&2; exit 7'), env: { GREETING: "hello" }, workdir: "/work/dir", user: "builder" },
          { argv: sh("touch /made-by-root && id -un") },
        ],
      });
      assert.equal(r.steps[0].stdout, "hello from /work/dir as 1000:1000 pid 1\n");
      assert.equal(r.steps[0].stderr, "oops\n");
      assert.equal(r.steps[0].exitCode, 7);
      assert.equal(r.steps[1].stdout, "root\n");
      assert.deepEqual(r.upper, ["/made-by-root", "/work", "/work/dir"]);
    });

    test("withRootfs without an upper dir shows the image exactly, refuses writes and unmounts when its callback throws", async () => {
      const r = await runHarness(user.name, { base: "busybox", steps: [], readOnly: true });
      assert.deepEqual(r.readOnly!.entries, ["bin", "etc", "root", "tmp"]);
      assert.equal(r.readOnly!.writeError, "EROFS");
      assert.equal(r.readOnly!.thrown, "thrown inside withRootfs");
      assert.deepEqual(r.readOnly!.mountsLeft, []);
    });

    test("a no-op step leaves the upper dir empty, even on a base without /etc, /proc or /dev", async () => {
      const r = await runHarness(user.name, {
        base: "scratch",
        steps: [
          // scratch has no shell: bind the host's static busybox as /bin/sh for the step only.
          { argv: sh("cat /etc/resolv.conf >/dev/null && test -c /dev/null && test -d /proc/self"), binds: [{ target: "/bin/sh", host: "/bin/busybox", readonly: true }] },
          { argv: sh("true"), network: "none", binds: [{ target: "/bin/sh", host: "/bin/busybox", readonly: true }], secrets: [{ id: "s", text: "x" }] },
        ],
      });
      assert.deepEqual(r.steps.map((s) => s.exitCode), [0, 0], r.stderrLog);
      assert.deepEqual(r.upper, []);
      const ms = r.steps.map((s) => Math.round(s.ms));
      console.log(`per-step wall time of a no-op run (${user.name}): ${ms.join(", ")} ms`);
    });

    test('network "none" cannot reach deb.debian.org while "host" can', async () => {
      // bash's /dev/tcp: Debian's minbase has no wget or curl, and static busybox cannot resolve names.
      const probe = ["/bin/bash", "-c", 'exec 3<>/dev/tcp/deb.debian.org/80 && printf "HEAD /debian/ HTTP/1.0\\r\\nHost: deb.debian.org\\r\\n\\r\\n" >&3 && head -c 12 <&3 && echo && echo reached || echo unreachable'];
      const r = await runHarness(user.name, { base: "debian", steps: [{ argv: probe, network: "none" }, { argv: probe, network: "host" }] });
      assert.equal(r.steps[0].stdout.trim(), "unreachable");
      assert.match(r.steps[1].stdout, /^HTTP\/1\.[01] \d{3}\nreached\n$/, r.steps[1].stderr);
    });

    test("apt-get install -y hello works in a Debian minbase (needs _apt, uid switching, network) and the upper dir holds /usr/bin/hello", async () => {
      const r = await runHarness(user.name, {
        base: "debian",
        steps: [{ argv: sh("apt-get update -q && apt-get install -y -q --no-install-recommends hello && hello"), env: { DEBIAN_FRONTEND: "noninteractive" } }],
      });
      assert.equal(r.steps[0].exitCode, 0, r.steps[0].stderr.slice(-2000));
      assert.match(r.steps[0].stdout, /Hello, world!\n$/);
      assert.ok(r.upper.includes("/usr/bin/hello"), "the layer has /usr/bin/hello");
      assert.ok(!r.upper.some((p) => /^\/(proc|dev|sys)\/|^\/etc\/(resolv\.conf|hosts)$/.test(p)), `sandbox files leaked into the upper dir: ${r.upper.filter((p) => /^\/(proc|dev|sys|etc\/(resolv|hosts))/.test(p)).join(", ")}`);
    });

    test("a root step cannot climb out of its rootfs the way one leaves a chroot", async () => {
      const escape = 'mkdir "/x"; chroot "/x" or die "chroot: $!"; chdir ".." for 1..40; chroot "." or die "chroot: $!"; ' +
        `exec "/bin/sh", "-c", "test -e ${REPO}package.json && echo escaped || echo contained"`;
      const r = await runHarness(user.name, { base: "debian", steps: [{ argv: ["/usr/bin/perl", "-e", escape] }] });
      assert.equal(r.steps[0].stdout, "contained\n", r.steps[0].stderr);
    });

    test("what a step leaves in /dev is seen by later steps on the same mount only, not by another stage's", async () => {
      const plant = { argv: sh("touch /dev/planted") };
      const look = { argv: sh("test -e /dev/planted && echo seen || echo absent") };
      const same = await runHarness(user.name, { base: "busybox", steps: [plant, look] });
      const separate = await runHarness(user.name, { base: "busybox", steps: [plant, look], separateMounts: true });
      assert.equal(same.steps[1].stdout, "seen\n");
      assert.equal(separate.steps[1].stdout, "absent\n");
      assert.deepEqual(separate.upper, []);
    });

    test("a secret is readable at /run/secrets/<id> during the step but its content never reaches the upper dir", async () => {
      const secret = "s3cret-" + randomBytes(8).toString("hex");
      const r = await runHarness(user.name, {
        base: "busybox",
        grep: secret,
        steps: [{ argv: sh("sha256sum /run/secrets/token > /tmp/token.sha256; ls -l /run/secrets/token"), secrets: [{ id: "token", text: secret }], user: "builder" }],
      });
      assert.equal(r.steps[0].exitCode, 0, r.steps[0].stderr);
      assert.match(r.steps[0].stdout, /^-r-------- +1 builder +builder +\d+ .*\/run\/secrets\/token\n$/);
      assert.deepEqual(r.grepHits, []);
      assert.ok(!r.upper.some((p) => p.startsWith("/run")), `upper has ${r.upper.join(", ")}`);
      assert.ok(r.upper.includes("/tmp/token.sha256"));
    });

    test("binds (ro and rw) and caches are mounted for the step and are not part of the upper dir", async () => {
      const dir = spawnSync("mktemp", ["-d"]).stdout.toString().trim();
      spawnSync("chmod", ["777", dir]);
      const r = await runHarness(user.name, {
        base: "busybox",
        steps: [
          {
            argv: sh("cat /in/hello; echo no > /in/x 2>/dev/null || echo ro-refused; echo cached >> /cache/log; echo rw > /out/file"),
            binds: [{ target: "/in", host: `${REPO}/test/helpers`, readonly: true }, { target: "/out", host: dir, readonly: false }],
            caches: [{ target: "/cache", dir: `${dir}/cache` }],
          },
        ],
      });
      assert.match(r.steps[0].stdout, /ro-refused/);
      assert.equal(readFileSync(`${dir}/file`, "utf8"), "rw\n");
      assert.equal(readFileSync(`${dir}/cache/log`, "utf8"), "cached\n");
      assert.deepEqual(r.upper, []);
      spawnSync("rm", ["-rf", dir]);
    });

    test("on a terminal (mstage shell), Ctrl-C goes to the step, which may handle it, and mstage carries on", { skip: spawnSync("script", ["--version"]).status === 0 ? undefined : "util-linux `script` is not installed (it provides the pseudo-terminal)" }, async () => {
      const step = { argv: sh('trap "echo interrupted; exit 0" INT; echo ready; sleep 30 & wait; echo not-interrupted'), tty: true };
      const c = asUser(user.name, [process.execPath, "--import", "tsx", HARNESS, JSON.stringify({ base: "busybox", steps: [step] })]);
      const quoted = [c.cmd, ...c.args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
      // `exec`: script runs the command through a shell, which must not stay between (dash would
      // exit 130 on the terminal's SIGINT even though its child handled it).
      const child = spawn("script", ["-qec", `exec ${quoted}`, "/dev/null"], { cwd: REPO, env: c.env, stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      let sent = false;
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        if (!sent && /ready\r?\n/.test(out)) {
          sent = true;
          child.stdin.write("\x03");
        }
      });
      const code = await new Promise((resolve) => child.once("close", resolve));
      assert.equal(code, 0, out);
      assert.match(out, /interrupted/);
      assert.doesNotMatch(out, /not-interrupted/);
      assert.match(out, /"steps":\[\{"exitCode":0/);
    });

    test("SIGINT during `sleep 100` ends mstage within 2 s with no process or mount left", async () => {
      const { child, token, log } = await startSleepingStep(user.name);
      const t0 = Date.now();
      child.kill("SIGINT");
      await new Promise((resolve) => child.once("close", resolve));
      const elapsed = Date.now() - t0;
      assert.ok(elapsed < 2000, `exited after ${elapsed} ms`);
      assert.deepEqual(processesWith(token), []);
      const tmp = /harness tmp (\S+)/.exec(log())![1];
      assert.ok(!readFileSync("/proc/self/mountinfo", "utf8").includes(tmp), "no mount of the harness is left");
    });

    test("when the process running the step is killed with SIGKILL, the step's whole process tree dies too", async () => {
      const { child, token, log } = await startSleepingStep(user.name);
      // The re-executed mstage inside the namespace: the outer process's only node child.
      const inner = spawnSync("pgrep", ["-P", String(child.pid), "-x", "node"]).stdout.toString().trim() || String(child.pid);
      process.kill(Number(inner), "SIGKILL");
      await new Promise((resolve) => child.once("close", resolve));
      const deadline = Date.now() + 2000;
      while (processesWith(token).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(processesWith(token), []);
      removeHarnessTmp(log());
    });

    test("when the outer mstage is killed with SIGKILL, the one inside the namespace notices and ends the step", async () => {
      const { child, token, log } = await startSleepingStep(user.name);
      child.kill("SIGKILL");
      const deadline = Date.now() + 3000;
      while (processesWith(token).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(processesWith(token), []);
      removeHarnessTmp(log());
    });
  });
}

/** Starts the harness with a step that sleeps; resolves once the step is running. */
async function startSleepingStep(user: string) {
  const token = "mstage-sleep-" + randomBytes(6).toString("hex");
  const scenario = { base: "busybox", steps: [{ argv: sh(`echo ready; sleep 100; : ${token}`) }] };
  const c = asUser(user, [process.execPath, "--import", "tsx", HARNESS, JSON.stringify(scenario)]);
  const child = spawn(c.cmd, c.args, { cwd: REPO, env: c.env, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  await new Promise<void>((resolve, reject) => {
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err += d;
      if (err.includes("ready\n")) resolve();
    });
    child.once("exit", () => reject(new Error(`harness exited early:\n${err}`)));
  });
  assert.ok(processesWith(token).length > 0, "the step is running");
  return { child, token, log: () => err };
}

/** A killed harness cannot clean up; its files belong to the namespace's ids, which root can remove. */
function removeHarnessTmp(log: string): void {
  const tmp = /harness tmp (\S+)/.exec(log)?.[1];
  if (tmp && process.getuid!() === 0) rmSync(tmp, { recursive: true, force: true });
}

function processesWith(token: string): string[] {
  const out = spawnSync("ps", ["-eo", "pid=,args="]).stdout.toString();
  return out.split("\n").filter((l) => l.includes(token) && !l.includes("ps -eo"));
}
