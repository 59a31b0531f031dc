// What a step is denied (issue 9, DESIGN §4), as root and as the unprivileged mstage-test: a
// read-only bind stays read-only, /proc is read-only and masked as runc makes it, the capability
// set is Docker's default (setuid programs still work), a `network: "none"` step cannot reach the
// host's abstract unix sockets, a step that fills /dev meets ENOSPC at Docker's 64 MiB (not the
// host's memory: /dev is on the build's scratch tmpfs), and a build killed with SIGKILL leaves nothing in the temp dir.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HARNESS, REPO, runHarness, type HarnessResult } from "./helpers/sandbox-harness.ts";
import { asUser, testUsers } from "./helpers/users.ts";
import { MSTAGE_BIN, expectOk, mstageAs, projectWith, userDirsFor, writeAs } from "./up-harness.ts";

const sh = (script: string) => ["/bin/sh", "-c", script];
const busybox = existsSync("/bin/busybox") ? undefined : "busybox-static is not installed (/bin/busybox): run .ci/setup";

/** runc's read-only /proc paths and masked /proc files that this kernel has. */
const PROC_READONLY = ["bus", "fs", "irq", "sys", "sysrq-trigger"].filter((p) => existsSync(`/proc/${p}`));
const PROC_MASKED = ["acpi", "asound", "kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi"].filter((p) => existsSync(`/proc/${p}`));

/** Opens each path for writing (appending nothing), so a probe changes nothing even where it succeeds. */
const openForWriting = (paths: string[]) =>
  paths.map((p) => `if (exec 3>>${p}) 2>/dev/null; then echo "${p} writable"; else echo "${p} refused"; fi`).join("; ");

for (const user of testUsers()) {
  describe(`containment as ${user.name}`, { skip: user.skip ?? busybox }, () => {
    test("a read-only bind stays read-only: a step can neither remount nor unmount it, not even from a user namespace of its own", async () => {
      const dir = mkdtempSync(join(tmpdir(), "mstage-ro-bind-"));
      try {
        // World-writable, so that only the read-only mount stands between the step and the file.
        writeFileSync(join(dir, "f"), "original\n");
        chmodSync(join(dir, "f"), 0o666);
        chmodSync(dir, 0o777);
        const bb = "/bin/busybox";
        const script =
          `${bb} mount -o remount,rw,bind /src; echo "remount $?"; echo changed >/src/f; ` +
          `${bb} umount /src; echo "umount $?"; ${bb} umount -l /src; echo "detach $?"; ` +
          `${bb} unshare -Urm ${bb} sh -c 'echo "nested as $(id -u)"; ${bb} mount -o remount,rw,bind /src; echo "nested remount $?"; echo changed >/src/f; ${bb} umount -l /src; echo "nested detach $?"'; ` +
          "cat /src/f";
        const r = await runHarness(user.name, { base: "busybox", steps: [{ argv: sh(script), binds: [{ target: "/src", host: dir, readonly: true }] }] });
        const out = r.steps[0].stdout;
        assert.equal(readFileSync(join(dir, "f"), "utf8"), "original\n", `the host file changed; the step said:\n${out}${r.steps[0].stderr}`);
        assert.match(out, /^nested as 0$/m, `the step could not make a user namespace, so the nested case proves nothing:\n${r.steps[0].stderr}`);
        for (const what of ["remount", "umount", "detach", "nested remount", "nested detach"]) {
          assert.match(out, new RegExp(`^${what} [1-9]\\d*$`, "m"), `${what} succeeded:\n${out}`);
        }
        assert.match(out, /original\n$/, "the bind is still mounted after the attempts");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test("a step that is not on a terminal (as in `mstage up`) cannot open the terminal mstage runs on, so it cannot type into the user's shell", { skip: spawnSync("script", ["--version"]).status === 0 ? undefined : "util-linux `script` is not installed (it provides the pseudo-terminal)" }, async () => {
      const probe = sh('if (exec 3<>/dev/tty) 2>/dev/null; then echo "step has the terminal"; else echo "step has no terminal"; fi');
      // The tty step (as in `mstage shell`) is the control: it is given the terminal on purpose.
      const scenario = { base: "busybox", steps: [{ argv: probe }, { argv: probe, tty: true }] };
      const c = asUser(user.name, [process.execPath, "--import", "tsx", HARNESS, JSON.stringify(scenario)]);
      const quoted = [c.cmd, ...c.args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
      const child = spawn("script", ["-qec", `exec ${quoted}`, "/dev/null"], { cwd: REPO, env: c.env, stdio: ["pipe", "pipe", "pipe"] });
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
      const code = await new Promise((resolve) => child.once("close", resolve));
      assert.equal(code, 0, out);
      assert.match(out, /^step has the terminal\r?$/m, `the control step did not get the terminal:\n${out}`);
      const result = JSON.parse(out.split(/\r?\n/).filter((l) => l.startsWith('{"steps"')).pop()!) as HarnessResult;
      assert.equal(result.steps[0].stdout, "step has no terminal\n");
    });

    describe("/proc as runc leaves it", () => {
      let probe: Promise<HarnessResult>;
      before(() => {
        const script =
          openForWriting(["/proc/sys/vm/drop_caches", "/proc/sys/kernel/core_pattern", ...(PROC_READONLY.includes("sysrq-trigger") ? ["/proc/sysrq-trigger"] : [])]) +
          "; for p in " + PROC_MASKED.map((p) => `/proc/${p}`).join(" ") + '; do if [ -d "$p" ]; then echo "$p $(ls -A "$p" | wc -l) entries"; else echo "$p $(cat "$p" 2>&1 | wc -c) bytes"; fi; done' +
          "; cat /proc/self/mountinfo";
        const bb = "/bin/busybox";
        const ownNamespace =
          `${bb} mkdir -p /tmp/p; ${bb} unshare -Urmpf ${bb} sh -c 'echo "own namespace as $(id -u)"; ${bb} mount -t proc proc /tmp/p; echo "fresh proc $?"; ${bb} umount -l /proc/sys; echo "unmask $?"'; ` +
          `${bb} unshare -Urmn ${bb} sh -c '${bb} mount -t sysfs sysfs /tmp/p; echo "fresh sysfs $?"'`;
        probe = runHarness(user.name, { base: "busybox", steps: [{ argv: sh(script) }, { argv: sh(script), user: "builder" }, { argv: sh(ownNamespace) }] });
      });

      test("a step cannot open /proc/sys/vm/drop_caches or /proc/sys/kernel/core_pattern for writing, as root or as another user", async () => {
        const r = await probe;
        for (const s of r.steps.slice(0, 2)) {
          assert.match(s.stdout, /^\/proc\/sys\/vm\/drop_caches refused$/m, s.stdout);
          assert.match(s.stdout, /^\/proc\/sys\/kernel\/core_pattern refused$/m, s.stdout);
        }
      });

      test("a step cannot open /proc/sysrq-trigger for writing", { skip: PROC_READONLY.includes("sysrq-trigger") ? undefined : "this kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ is off)" }, async () => {
        const r = await probe;
        for (const s of r.steps.slice(0, 2)) assert.match(s.stdout, /^\/proc\/sysrq-trigger refused$/m, s.stdout);
      });

      test("from a user namespace of its own, a step can neither mount a fresh /proc or sysfs nor unmount a mask", async () => {
        const { stdout } = (await probe).steps[2];
        assert.match(stdout, /^own namespace as 0$/m, `the step could not make a user namespace, so this proves nothing:\n${stdout}`);
        for (const what of ["fresh proc", "unmask", "fresh sysfs"]) assert.match(stdout, new RegExp(`^${what} [1-9]\\d*$`, "m"), `${what} succeeded:\n${stdout}`);
      });

      test(`/proc/{${PROC_READONLY.join(",")}} are read-only mounts and /proc/{${PROC_MASKED.join(",")}} are empty`, async () => {
        const r = await probe;
        const s = r.steps[0];
        const mounts = new Map(s.stdout.split("\n").map((l) => l.split(" ")).filter((f) => f.length > 6).map((f) => [f[4], f[5].split(",")] as const));
        for (const p of PROC_READONLY) assert.ok(mounts.get(`/proc/${p}`)?.includes("ro"), `/proc/${p} is not a read-only mount:\n${s.stdout}`);
        for (const p of PROC_MASKED) {
          assert.ok(mounts.has(`/proc/${p}`), `/proc/${p} is not masked`);
          assert.match(s.stdout, new RegExp(`^/proc/${p} 0 (bytes|entries)$`, "m"), s.stdout);
        }
      });
    });

    describe("capabilities and networks", () => {
      let probe: Promise<HarnessResult>;
      const socketName = `mstage-test-${randomBytes(6).toString("hex")}`;
      const server = createServer((c) => c.end("hello from the host\n"));
      before(async () => {
        await new Promise<void>((resolve) => server.listen("\0" + socketName, resolve));
        // Debian's minbase has perl (perl-base), which can connect to an abstract socket. Node names
        // one with the whole sun_path (NUL-padded), so the address is packed the same way.
        const connect = ["/usr/bin/perl", "-MSocket", "-e",
          `socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die; if (connect($s, pack("S a108", AF_UNIX, "\\0${socketName}"))) { print "reached: ", scalar <$s> } else { print "unreachable: $!\\n" }`];
        const status = "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status";
        probe = runHarness(user.name, {
          base: "debian",
          steps: [
            { argv: sh(`${status}; cp /usr/bin/id /usr/local/bin/suid-id && chmod 4755 /usr/local/bin/suid-id`) },
            { argv: sh(`${status}; /usr/local/bin/suid-id -u`), user: "nobody" },
            { argv: connect, network: "none" },
            { argv: connect, network: "host" },
          ],
        }).finally(() => server.close());
      });

      test("a root step has Docker's default capabilities only (no CAP_SYS_ADMIN, SYS_PTRACE, SYS_MODULE…), another user none, and no_new_privs is off so setuid programs work", async () => {
        const r = await probe;
        // chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap
        const docker = "00000000a80425fb";
        assert.equal(r.steps[0].stdout, `CapEff:\t${docker}\nCapBnd:\t${docker}\nNoNewPrivs:\t0\n`, r.steps[0].stderr);
        assert.equal(r.steps[1].stdout, `CapEff:\t0000000000000000\nCapBnd:\t${docker}\nNoNewPrivs:\t0\n0\n`, r.steps[1].stderr);
      });

      test('a network "none" step cannot reach the host\'s abstract unix sockets, a "host" one can', async () => {
        const r = await probe;
        assert.match(r.steps[2].stdout, /^unreachable: /, r.steps[2].stderr);
        assert.equal(r.steps[3].stdout, "reached: hello from the host\n", r.steps[3].stderr);
      });
    });
  });

  test(`a step that fills /dev or /dev/shm fails to write at 64 MiB, as in Docker, instead of filling the host's memory (${user.name})`, async (t) => {
    const why = user.skip ?? busybox;
    if (why) return t.skip(why);
    const bb = "/bin/busybox";
    const { mstage } = projectWith(t, user.name, "dev-full", `import { local, scratch, stage } from "mstage";
export const filler = stage("filler", {
  from: scratch(),
  copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) },
  shell: ["${bb}", "sh", "-c"],
  run: "for d in /dev /dev/shm; do ${bb} dd if=/dev/zero of=$d/small bs=1M count=1 2>/dev/null && echo small-written:$d; if ${bb} dd if=/dev/zero of=$d/fill bs=1M count=80 2>/dev/null; then echo filled:$d; exit 1; fi; ${bb} rm -f $d/fill $d/small; echo refused:$d; done",
});
`);
    const r = expectOk(await mstage(["up", "--progress", "plain"]), "up with a step that fills /dev and /dev/shm");
    const out = r.stdout + r.stderr;
    for (const d of ["/dev", "/dev/shm"]) {
      assert.match(out, new RegExp(`small-written:${d}$`, "m"), `a step could not write 1 MiB into ${d}:\n${out}`);
      assert.match(out, new RegExp(`refused:${d}$`, "m"), `80 MiB went into ${d}:\n${out}`);
    }
  });

  test(`a build killed with SIGKILL during a step (with another stage's path bound) leaves nothing in the temp dir, and gc clears what it left in the store (${user.name})`, { timeout: 3 * 60_000 }, async (t) => {
    const why = user.skip ?? busybox;
    if (why) return t.skip(why);
    const [project, store, temp] = userDirsFor(t, user.name, "kill-project", "kill-store", "kill-tmp") as [string, string, string];
    const token = `mstage-kill-${randomBytes(6).toString("hex")}`;
    // The bind of another stage's path keeps that stage's rootfs mounted (read-only) during the step.
    writeAs(user.name, join(project, "images.ts"), `import { local, scratch, stage } from "mstage";
const tools = stage("tools", { from: scratch(), copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) } });
export const sleeper = stage("sleeper", {
  from: tools,
  shell: ["/bin/busybox", "sh", "-c"],
  binds: { "/tools": tools.path("/bin") },
  run: "test -x /tools/busybox && echo ready; /bin/busybox sleep 100; : ${token}",
});
`);
    const c = asUser(user.name, [process.execPath, MSTAGE_BIN, "up", "--progress", "plain"], { MSTAGE_STORE: store, TMPDIR: temp, NO_COLOR: "1" });
    const child = spawn(c.cmd, c.args, { cwd: project, env: { ...c.env, TMPDIR: temp }, stdio: ["ignore", "pipe", "pipe"] });
    const closed = new Promise((resolve) => child.once("close", resolve));
    let out = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the step never started:\n${out}`)), 120_000);
      const onData = (d: Buffer) => {
        out += d.toString();
        if (/ready/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("close", () => reject(new Error(`mstage ended before the step ran:\n${out}`)));
    });
    // The mstage inside the namespace makes the step's files; it gets no chance to clean up.
    const inner = spawnSync("pgrep", ["-P", String(child.pid), "-x", "node"]).stdout.toString().trim();
    assert.ok(inner, "found the mstage inside the namespace");
    process.kill(Number(inner), "SIGKILL");
    await closed;
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && spawnSync("pgrep", ["-f", token]).status === 0) await new Promise((r) => setTimeout(r, 50));
    assert.notEqual(spawnSync("pgrep", ["-f", token]).status, 0, "the step died with mstage");
    assert.deepEqual(readdirSync(temp), [], "nothing in the temp dir");
    assert.ok(readdirSync(join(store, "tmp")).length > 0, "the killed build left its work dir in the store's tmp/");
    expectOk(await mstageAs(user.name, project, store)(["gc"], { env: { TMPDIR: temp } }), "gc after the kill");
    assert.deepEqual(readdirSync(join(store, "tmp")), [], "gc cleared the store's tmp/");
    assert.ok(statSync(store).isDirectory());
  });
}
