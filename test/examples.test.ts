// The seed examples, built with the real CLI and judged with skopeo, umoci and runc. The Debian
// base (mmdebstrap, about a minute) is made once per user and kept in a store under the test
// cache dir, which every example shares: they all use the same debian() arguments.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { REPO, builtStages, copyProject, expectOk, inBundle, layoutRefs, listRootfs, mstageAs, runBundle, skopeoInspect, testUsers, tool, unpack, writeAs } from "./up-harness.ts";
import { arm64Emulation } from "./helpers/multiarch.ts";
import { testCachePath } from "./helpers/rootfs.ts";

const missing = ["skopeo", "umoci", "runc", "mmdebstrap"].filter((t) => !tool(t));

/** One store per user, kept between runs (a debian() base is slow to make and never changes). */
function sharedStore(user: string): string {
  const uid = execFileSync("id", ["-u", user], { encoding: "utf8" }).trim();
  const cache = testCachePath(uid);
  const dir = join(cache, "examples-store");
  mkdirSync(dir, { recursive: true });
  if (user !== root.name) execFileSync("chown", [`${user}:${user}`, cache, dir]);
  return dir;
}

function example(name: string, user: string) {
  const project = copyProject(join(REPO, "examples", name), user, `ex-${name}`);
  const mstage = mstageAs(user, project, sharedStore(user));
  return { project, mstage, layout: join(project, "oci") };
}

const root = testUsers()[0]!;
const skipAll = missing.length ? `missing ${missing.join(", ")}: run .ci/setup` : undefined;

const helloGo = async (t: TestContext) => {
  if (skipAll) return t.skip(skipAll);
  const { project, mstage, layout } = example("hello-go", root.name);
  t.after(() => rmSync(project, { recursive: true, force: true }));

  const first = expectOk(await mstage(["up", "--progress", "plain"]), "up");
  assert.match(first.stdout, /hello/);
  assert.deepEqual(Object.keys(layoutRefs(layout)), ["hello"], "the build stage has no ref");
  const m = skopeoInspect(layout, "hello") as { Layers: string[] };
  assert.equal(m.Layers.length, 1);
  const bundle = unpack(layout, "hello");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  assert.deepEqual(listRootfs(bundle), ["hello"], "the image holds only the binary");
  const run = runBundle(bundle);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim(), "Hello from mstage!");
  const lock = JSON.parse(readFileSync(join(project, "images.lock"), "utf8")) as { debian: Record<string, { packages: Record<string, string> }> };
  const pinned = Object.values(lock.debian)[0]?.packages ?? {};
  assert.match(pinned["golang-go"] ?? "", /^2:1\.\d+/, "images.lock pins the resolved package versions");

  await t.test("a second up builds nothing", async () => {
    const r = expectOk(await mstage(["up"]), "second up");
    assert.match(r.stdout, /0 built, 2 cached/);
  });

  await t.test("editing the Go source rebuilds exactly the build stage and the image copying from it", async () => {
    const src = join(project, "main.go");
    // A greeting of this run only: the shared store already holds the results of earlier runs' edits.
    const greeting = `Hello, edited ${Date.now()}!`;
    writeAs(root.name, src, readFileSync(src, "utf8").replace("Hello from mstage!", greeting));
    const r = expectOk(await mstage(["up", "--progress", "plain"]), "edit up");
    assert.deepEqual(builtStages(r), ["build", "hello"]);
    assert.doesNotMatch(r.stderr, /mmdebstrap|debian bookworm/, "the debian base is reused");
    inBundle(layout, "hello", (b) => assert.equal(runBundle(b).stdout.trim(), greeting));
  });
};

const tarball = async (t: TestContext) => {
  if (skipAll) return t.skip(skipAll);
  const { project, mstage, layout } = example("tarball", root.name);
  t.after(() => rmSync(project, { recursive: true, force: true }));
  expectOk(await mstage(["up", "--progress", "plain"]), "up");
  assert.deepEqual(Object.keys(layoutRefs(layout)), ["app"], "the rootfs stage has no ref");
  assert.equal((skopeoInspect(layout, "app") as { Layers: string[] }).Layers.length, 1);
  const bundle = unpack(layout, "app");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  assert.deepEqual(listRootfs(bundle), ["bin", "bin/app", "etc", "etc/motd"]);
  assert.equal(runBundle(bundle).stdout.trim(), "Hello from a tarball image!");
};

const binds = async (t: TestContext) => {
  if (skipAll) return t.skip(skipAll);
  const { project, mstage, layout } = example("binds", root.name);
  t.after(() => rmSync(project, { recursive: true, force: true }));
  expectOk(await mstage(["up", "--progress", "plain"]), "up");
  assert.deepEqual(Object.keys(layoutRefs(layout)), ["site"]);
  const bundle = unpack(layout, "site");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  assert.deepEqual(listRootfs(bundle), ["srv", "srv/www", "srv/www/docs", "srv/www/docs/readme.txt", "srv/www/index.html", "srv/www/notes-index.txt"]);
  assert.equal(readFileSync(join(bundle, "rootfs/srv/www/notes-index.txt"), "utf8"), "shopping.txt: Buy milk\nwork.txt: Ship mstage\n");
  const owner = (p: string) => { const st = statSync(join(bundle, "rootfs", p)); return `${st.uid}:${st.gid}`; };
  assert.equal(owner("srv/www/docs/readme.txt"), "101:101", "copy's owner applies to the copied files");
  assert.equal(owner("srv/www"), "101:101");
  assert.equal(owner("srv"), "101:101", "parents that copy creates get copy's owner too, as with buildah's and BuildKit's --chown");
  const cfg = skopeoInspect(layout, "site", true) as { config: { Labels: Record<string, string> } };
  assert.equal(cfg.config.Labels["org.opencontainers.image.title"], "static site");

  await t.test("editing a bound file rebuilds the stage that reads it", async () => {
    const note = `Ship it again ${Date.now()}`;
    writeAs(root.name, join(project, "notes/work.txt"), `${note}\n`);
    const r = expectOk(await mstage(["up", "--progress", "plain"]), "edit up");
    assert.deepEqual(builtStages(r), ["index", "site"]);
    inBundle(layout, "site", (b) => assert.match(readFileSync(join(b, "rootfs/srv/www/notes-index.txt"), "utf8"), new RegExp(`work.txt: ${note}`)));
  });
};

const service = async (t: TestContext) => {
  if (skipAll) return t.skip(skipAll);
  const { project, mstage, layout } = example("service", root.name);
  t.after(() => rmSync(project, { recursive: true, force: true }));
  expectOk(await mstage(["up", "--progress", "plain"]), "up");
  const refs = layoutRefs(layout);
  assert.deepEqual(Object.keys(refs).sort(), ["localhost/mstage-example/service:latest", "service"]);
  const cfg = skopeoInspect(layout, "service", true) as { config: { User: string; ExposedPorts: Record<string, unknown>; Env: string[]; Cmd: string[]; WorkingDir: string } };
  assert.equal(cfg.config.User, "app");
  assert.deepEqual(Object.keys(cfg.config.ExposedPorts), ["8080/tcp"]);
  assert.ok(cfg.config.Env.includes("PORT=8080"));
  assert.deepEqual(cfg.config.Cmd, ["/usr/local/bin/server"]);
  const bundle = unpack(layout, "service");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  const once = runBundle(bundle, { args: ["/usr/local/bin/server", "--once"] });
  assert.equal(once.code, 0, once.stderr);
  assert.equal(once.stdout.trim(), "Hello from the service: serving on :8080 as app");
  assert.equal(runBundle(bundle, { args: ["id", "-un"] }).stdout.trim(), "app");
};

const crossGo = async (t: TestContext) => {
  if (skipAll) return t.skip(skipAll);
  const { project, mstage, layout } = example("cross-go", root.name);
  t.after(() => rmSync(project, { recursive: true, force: true }));
  const plan = expectOk(await mstage(["plan"]), "plan");
  assert.match(plan.stdout, /build \[linux\/arm64\]/, "the host build stage is planned once per target platform");
  expectOk(await mstage(["up", "--progress", "plain"]), "up");
  const index = JSON.parse(readFileSync(join(layout, "blobs", "sha256", layoutRefs(layout).hello!.slice(7)), "utf8")) as { mediaType: string; manifests: { platform: { architecture: string } }[] };
  assert.equal(index.mediaType, "application/vnd.oci.image.index.v1+json");
  assert.deepEqual(index.manifests.map((m) => m.platform.architecture), ["amd64", "arm64"]);
  for (const [arch, elf] of [["amd64", /ELF 64-bit LSB executable, x86-64/], ["arm64", /ELF 64-bit LSB executable, ARM aarch64/]] as const) {
    const single = join(project, `single-${arch}`);
    execFileSync("skopeo", ["copy", "-q", "--override-arch", arch, `oci:${layout}:hello`, `oci:${single}:${arch}`]);
    const bundle = unpack(single, arch);
    t.after(() => rmSync(bundle, { recursive: true, force: true }));
    assert.match(execFileSync("file", [join(bundle, "rootfs/hello")], { encoding: "utf8" }), elf, `the ${arch} image holds an ${arch} binary`);
    // The arm64 one runs too where qemu-user-static's binfmt handler is registered (.ci/setup).
    if (arch === "arm64" && arm64Emulation()) continue;
    const run = runBundle(bundle);
    assert.equal(run.stdout.trim(), `Hello from mstage on linux/${arch}!`, run.stderr);
  }
};

const helloGoUnprivileged = async (t: TestContext) => {
  const user = testUsers()[1]!;
  if (skipAll ?? user.skip) return t.skip((skipAll ?? user.skip)!);
  const { project, mstage, layout } = example("hello-go", user.name);
  t.after(() => rmSync(project, { recursive: true, force: true }));
  expectOk(await mstage(["up", "--progress", "plain"]), "up as mstage-test");
  const bundle = unpack(layout, "hello");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  assert.deepEqual(listRootfs(bundle), ["hello"]);
  assert.equal(runBundle(bundle).stdout.trim(), "Hello from mstage!");
};

// Root's examples share one store and run in order (the first makes the debian base); the
// unprivileged build has a store of its own and runs beside them, so CI waits for one mmdebstrap.
test("the examples build and run", { timeout: 20 * 60_000, concurrency: 2 }, async (t) => {
  await Promise.all([
    t.test(`as ${root.name}`, { timeout: 15 * 60_000, concurrency: 2 }, async (t) => {
      await t.test("hello-go: a static Go binary built on a debian() toolchain, alone in a scratch image", helloGo);
      // The base exists now; the service image's big export overlaps the two small examples.
      await Promise.all([
        t.test("service: env, expose, cmd and a user made with useradd that the container runs as", service),
        (async () => {
          await t.test("tarball: a build-only stage's tar becomes an image of exactly its files, in one layer", tarball);
          await t.test("binds: a step reads a read-only bind; a host directory is copied into an image with nothing run", binds);
        })(),
      ]);
    }),
    t.test("hello-go as the unprivileged mstage-test user", { timeout: 15 * 60_000 }, helloGoUnprivileged),
  ]);
});

// After the others: it reuses the debian() toolchain hello-go made in root's shared store.
test("cross-go: one native build stage cross-compiles Go for amd64 and arm64 into an image index", { timeout: 10 * 60_000 }, crossGo);
