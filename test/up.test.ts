// `mstage up` end to end on a busybox project (no network): caching, config-only changes, failures
// that leave outputs and the store alone, tarball and squash images, reproducible digests and
// docker-archive output. Runs as the invoking user and as the unprivileged mstage-test user.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { asUser } from "./helpers/users.ts";
import {
  MSTAGE_BIN,
  REPO,
  copyProject,
  expectOk,
  layoutRefs,
  listRootfs,
  mstageAs,
  runBundle,
  skopeoInspect,
  testUsers,
  tool,
  treeFingerprint,
  unpack,
  userDir,
  writeAs,
} from "./up-harness.ts";

const FIXTURE = join(REPO, "test/fixtures/up-busybox");
const missing = ["skopeo", "umoci", "runc"].filter((t) => !tool(t));
const busybox = existsSync("/bin/busybox") ? undefined : "busybox-static is not installed (/bin/busybox): run .ci/setup";

for (const user of testUsers()) {
  test(`mstage up as ${user.name}`, { timeout: 10 * 60_000 }, async (t) => {
    const why = user.skip ?? busybox ?? (missing.length ? `missing ${missing.join(", ")}: run .ci/setup` : undefined);
    if (why) return t.skip(why);
    const project = copyProject(FIXTURE, user.name);
    const store = userDir(user.name, "store");
    const mstage = mstageAs(user.name, project, store);
    const layout = join(project, "oci");
    const runLog = () => {
      const f = join(store, "caches/up-test-runs/log");
      return existsSync(f) ? readFileSync(f, "utf8").trim().split("\n").length : 0;
    };
    t.after(() => {
      rmSync(project, { recursive: true, force: true });
      rmSync(store, { recursive: true, force: true });
    });

    let first: Record<string, string> = {};
    await t.test("a first up builds every stage and writes one ref per exported stage and tag", async () => {
      const r = expectOk(await mstage(["up", "--progress", "plain", "--jobs", "2"]), "first up");
      assert.match(r.stdout, /6 built, 0 cached/);
      assert.match(r.stderr, /\[build\] /, "plain progress lines carry the stage name");
      // build and rootfs both wait only for base: with two jobs they run at the same time.
      const at = (s: string) => r.stderr.indexOf(s);
      assert.ok(at("[rootfs] building") < at("[build] built in") && at("[build] building") < at("[rootfs] built in"), "independent stages overlap");
      // A stage whose inputs are still being built says what it waits for, until the last is done.
      assert.ok(at("[app] waiting for base, build") >= 0 && at("[app] waiting for base, build") < at("[base] built in"), r.stderr);
      assert.ok(at("[base] built in") < at("[app] waiting for build") && at("[app] waiting for build") < at("[app] building"), r.stderr);
      first = layoutRefs(layout);
      assert.deepEqual(Object.keys(first).sort(), ["app", "flat", "localhost/up-test/app:1.0", "packed"]);
      assert.equal(first["app"], first["localhost/up-test/app:1.0"]);
      assert.ok(!("build" in first) && !("rootfs" in first) && !("base" in first), "build-only stages have no ref");
      assert.equal(runLog(), 1);
    });

    await t.test("the app image runs and prints the greeting", async (tt) => {
      const bundle = unpack(layout, "app");
      tt.after(() => rmSync(bundle, { recursive: true, force: true }));
      const r = runBundle(bundle);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), "Hello from the up test");
      const cfg = skopeoInspect(layout, "app", true) as { config: { Cmd: string[]; Labels: Record<string, string> }; history: unknown[] };
      assert.deepEqual(cfg.config.Cmd, ["/usr/bin/hello"]);
      assert.equal(cfg.config.Labels["org.example.flavour"], "plain");
      const m = skopeoInspect(layout, "app") as { Layers: string[]; Created: string };
      assert.equal(m.Layers.length, 2, "base + app: one layer per stage");
      assert.equal(m.Created, "1970-01-01T00:00:00Z");
    });

    await t.test("the tarball image holds exactly the tar's files, as one layer", async (tt) => {
      const m = skopeoInspect(layout, "packed") as { Layers: string[] };
      assert.equal(m.Layers.length, 1);
      const bundle = unpack(layout, "packed");
      tt.after(() => rmSync(bundle, { recursive: true, force: true }));
      assert.deepEqual(listRootfs(bundle), ["bin", "bin/busybox", "bin/sh", "packed.txt"]);
      assert.equal(runBundle(bundle).stdout.trim(), "packed");
    });

    await t.test("squash: true emits the whole image as one layer", async (tt) => {
      const m = skopeoInspect(layout, "flat") as { Layers: string[] };
      assert.equal(m.Layers.length, 1);
      const bundle = unpack(layout, "flat");
      tt.after(() => rmSync(bundle, { recursive: true, force: true }));
      const files = listRootfs(bundle);
      for (const f of ["bin/busybox", "usr/bin/hello", "flat.txt"]) assert.ok(files.includes(f), `${f} in the squashed image`);
    });

    await t.test("a second up builds nothing and leaves the outputs as they were", async () => {
      const before = treeFingerprint(layout);
      const r = expectOk(await mstage(["up"]), "second up");
      assert.match(r.stdout, /0 built, 6 cached/);
      assert.deepEqual(treeFingerprint(layout), before);
      assert.equal(runLog(), 1);
    });

    await t.test("editing a local file rebuilds exactly the stage that copies it and the images built from it", async () => {
      writeAs(user.name, join(project, "greeting.txt"), "Hello again\n");
      const r = expectOk(await mstage(["up", "--progress", "plain"]), "edit up");
      const rebuilt = [...r.stderr.matchAll(/\[(\w+)\] built in/g)].map((m) => m[1]).sort();
      assert.deepEqual(rebuilt, ["app", "build", "flat"]);
      assert.equal(runLog(), 2);
      const now = layoutRefs(layout);
      assert.notEqual(now["app"], first["app"]);
      assert.equal(now["packed"], first["packed"], "an unrelated image keeps its digest");
    });

    await t.test("changing only cmd runs no step and rewrites config and manifest", async () => {
      const before = layoutRefs(layout);
      const file = join(project, "images.ts");
      writeAs(user.name, file, readFileSync(file, "utf8").replace('cmd: ["/usr/bin/hello"]', 'cmd: ["/usr/bin/hello", "--loud"]'));
      const r = expectOk(await mstage(["up", "--progress", "plain"]), "config-only up");
      assert.doesNotMatch(r.stderr, /\] run$/m, "no step ran");
      assert.match(r.stdout, /0 built/);
      assert.equal(runLog(), 2);
      const cfg = skopeoInspect(layout, "app", true) as { config: { Cmd: string[] } };
      assert.deepEqual(cfg.config.Cmd, ["/usr/bin/hello", "--loud"]);
      assert.notEqual(layoutRefs(layout)["app"], before["app"]);
    });

    await t.test("a failing step exits 1 with its exit code and output tail, leaving ./oci and the store as they were", async () => {
      const file = join(project, "images.ts");
      const good = readFileSync(file, "utf8");
      writeAs(user.name, file, good.replace('"echo build >> /runs/log",', '"echo build >> /runs/log",\n    "for i in $(seq 1 30); do echo line $i; done; echo oops >&2; exit 7",'));
      const layoutBefore = treeFingerprint(layout);
      const storeBefore = treeFingerprint(store, (rel) => rel.startsWith("tmp") || rel.startsWith("locks") || rel.startsWith("caches") || rel.startsWith("stat-cache"));
      const r = await mstage(["up", "--progress", "plain"]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /stage "build".*exit code 7/);
      assert.match(r.stderr, /^oops$/m);
      assert.match(r.stderr, /^line 30$/m);
      assert.doesNotMatch(r.stderr.slice(r.stderr.indexOf("error:")), /^line 10$/m, "only the last 20 lines are shown");
      assert.deepEqual(treeFingerprint(layout), layoutBefore);
      const storeAfter = treeFingerprint(store, (rel) => rel.startsWith("tmp") || rel.startsWith("locks") || rel.startsWith("caches") || rel.startsWith("stat-cache"));
      assert.deepEqual(storeAfter.map((l) => l.split(" ")[0]), storeBefore.map((l) => l.split(" ")[0]));
      assert.deepEqual(readdirSync(join(store, "tmp")), [], "no work dirs left behind");
      writeAs(user.name, file, good);
    });

    await t.test("--no-cache=build rebuilds that stage (and what depends on it) only", async () => {
      const r = expectOk(await mstage(["up", "--progress", "plain", "--no-cache=build"]), "no-cache up");
      const rebuilt = [...r.stderr.matchAll(/\[(\w+)\] built in/g)].map((m) => m[1]).sort();
      assert.ok(rebuilt.includes("build"));
      assert.ok(!rebuilt.includes("base") && !rebuilt.includes("rootfs"));
    });

    await t.test("two clean stores give identical manifest digests", async () => {
      const other = userDir(user.name, "store2");
      const again = copyProject(project, user.name, "up-again");
      try {
        const r = await mstageAs(user.name, again, other)(["up", "-q"]);
        expectOk(r, "up in a clean store");
        assert.deepEqual(layoutRefs(join(again, "oci")), layoutRefs(layout));
      } finally {
        rmSync(other, { recursive: true, force: true });
        rmSync(again, { recursive: true, force: true });
      }
    });

    await t.test("mstage shell runs a command on a stage's result, build-only stages too, and discards its changes", async () => {
      const storeBefore = treeFingerprint(join(store, "layers"));
      const r = expectOk(await mstage(["shell", "build", "-q", "--", "sh", "-c", "cat /out/hello && touch /out/scribble && id -u"]), "shell build");
      assert.match(r.stdout, /^echo Hello again$/m);
      assert.match(r.stdout, /^0$/m);
      const again = await mstage(["shell", "build", "-q", "--", "ls", "/out/scribble"]);
      assert.notEqual(again.code, 0, "the earlier session's file is gone");
      const piped = await mstage(["shell", "app", "-q"], {});
      assert.equal(piped.code, 0);
      const exit = await mstage(["shell", "app", "-q", "--", "sh", "-c", "exit 5"]);
      assert.equal(exit.code, 5, "the command's exit code is mstage's");
      assert.deepEqual(treeFingerprint(join(store, "layers")), storeBefore);
    });

    await t.test("Ctrl-C stops a running step: exit 130, no stray process, no mount, no work dir", async () => {
      const file = join(project, "images.ts");
      const good = readFileSync(file, "utf8");
      const marker = `mstage-interrupt-${process.pid}`;
      writeAs(user.name, file, good.replace('"echo build >> /runs/log",', `"echo build >> /runs/log",\n    "echo started; exec sleep 300 # ${marker}",`));
      try {
        const c = asUser(user.name, [process.execPath, MSTAGE_BIN, "up", "--progress", "plain"], { MSTAGE_STORE: store, NO_COLOR: "1" });
        const child = spawn(c.cmd, c.args, { cwd: project, env: c.env, stdio: ["ignore", "pipe", "pipe"] });
        let stderr = "";
        const closed = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`the step never started:\n${stderr}`)), 120_000);
          child.stderr.setEncoding("utf8").on("data", (d: string) => {
            stderr += d;
            if (stderr.includes("[build] started")) {
              clearTimeout(timer);
              resolve();
            }
          });
        });
        child.kill("SIGINT");
        const code = await closed;
        assert.equal(code, 130, stderr);
        assert.match(stderr, /interrupted/);
        const ps = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
        assert.ok(!ps.includes(marker), "the step's processes are gone");
        assert.ok(!readFileSync("/proc/mounts", "utf8").includes(store), "nothing stays mounted");
        assert.deepEqual(readdirSync(join(store, "tmp")), [], "no work dirs left behind");
      } finally {
        writeAs(user.name, file, good);
      }
    });

    await t.test("docker-archive output loads with podman", async (tt) => {
      const archive = join(project, "images.tar");
      expectOk(await mstage(["up", "-q", "--output", `docker-archive:${archive}`]), "docker-archive up");
      const manifest = JSON.parse(execFileSync("tar", ["-xOf", archive, "manifest.json"], { encoding: "utf8" })) as Array<{ RepoTags: string[] }>;
      assert.ok(manifest.some((m) => m.RepoTags.includes("localhost/up-test/app:1.0")));
      if (!tool("podman")) return tt.skip("podman is not installed: the archive's manifest.json was checked, not a load");
      if (process.getuid!() !== 0) return tt.skip("podman load is checked in the root run");
      const root = userDir(testUsers()[0]!.name, "podman");
      try {
        const out = execFileSync("podman", ["--root", join(root, "storage"), "--runroot", join(root, "run"), "load", "-i", archive], { encoding: "utf8" });
        assert.match(out, /localhost\/up-test\/app:1\.0/);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  });
}
