// The seed documents built as written: their Dockerfiles with dockerfile(), their stacker.yaml
// files with stacker(). Their base images (golang:1.21, zothub.io/…) are offline stand-ins
// (fixtures/seed-bases) pushed to a loopback docker-registry, which a test registries.conf makes
// a mirror of docker.io and zothub.io. Each image is run with runc and prints what the seed says.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, copyProject, expectOk, layoutRefs, mstageAs, runBundle, sameImage, skopeoInspect, testUsers, tool, unpack, userDir } from "./up-harness.ts";
import { registryUnavailable, startRegistry, type RunningRegistry } from "./helpers/registry.ts";
import { catHeredocs, fenced, indentedBlocks, quotedDockerfiles, seedText, seedsMissing } from "./helpers/seeds.ts";
import { listRootfs } from "./up-harness.ts";
import { testCachePath } from "./helpers/rootfs.ts";

const root = testUsers()[0]!;

function whyNot(): string | undefined {
  const missing = ["mmdebstrap", "skopeo", "umoci", "runc"].filter((t) => !tool(t));
  if (missing.length) return `missing ${missing.join(", ")}: run .ci/setup`;
  const r = registryUnavailable() ?? seedsMissing();
  if (r) return r;
  const u = spawnSync("unshare", ["--user", "--map-root-user", "--mount", "true"]);
  if (u.status !== 0) return `user namespaces are not available here (unshare: ${String(u.stderr).trim()}); see mstage doctor`;
  if (!existsSync(join(REPO, "packages", "cli", "dist", "mstage.mjs"))) return "the CLI is not built (pnpm build)";
  return undefined;
}
const skip = whyNot();

/** The store examples.test.ts keeps between runs (it holds the debian() Go toolchain base). */
function examplesStore(): string {
  const uid = execFileSync("id", ["-u", root.name], { encoding: "utf8" }).trim();
  const dir = join(testCachePath(uid), "examples-store");
  mkdirSync(dir, { recursive: true });
  return dir;
}

let reg: RunningRegistry;
let conf: string;
const cleanup: string[] = [];

before(async () => {
  if (skip) return;
  reg = await startRegistry();
  const bases = copyProject(join(REPO, "test", "fixtures", "seed-bases"), root.name, "seed-bases");
  cleanup.push(bases);
  const started = Date.now();
  expectOk(await mstageAs(root.name, bases, examplesStore())(["up", "--push", "--progress", "plain"], { env: { SEED_REGISTRY: reg.host } }), "pushing the seed bases");
  console.log(`# seed bases made and pushed in ${Date.now() - started} ms`);
  const dir = userDir(root.name, "seed-conf");
  cleanup.push(dir);
  conf = join(dir, "registries.conf");
  writeFileSync(
    conf,
    `unqualified-search-registries = ["docker.io"]\n` +
      `[[registry]]\nprefix = "docker.io"\n[[registry.mirror]]\nlocation = "${reg.host}"\n` +
      // zothub.io itself is not reachable from here: its location is the loopback registry.
      `[[registry]]\nprefix = "zothub.io"\nlocation = "${reg.host}"\n`,
  );
});

after(async () => {
  await reg?.stop();
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

/** A project dir holding `files`, built with mstage through the test registries.conf. */
function project(prefix: string, files: Record<string, string>): { dir: string; mstage: ReturnType<typeof mstageAs> } {
  const dir = userDir(root.name, prefix);
  cleanup.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const run = mstageAs(root.name, dir, examplesStore());
  const mstage = ((args: string[]) => run(args, { env: { CONTAINERS_REGISTRIES_CONF: conf } })) as ReturnType<typeof mstageAs>;
  return { dir, mstage };
}

function runImage(layout: string, ref: string): string {
  const bundle = unpack(layout, ref);
  cleanup.push(bundle);
  const r = runBundle(bundle);
  assert.equal(r.code, 0, `runc run ${ref}: ${r.stderr}`);
  return r.stdout;
}

test("seed 002: both Dockerfiles build as written, golang:1.21 through the registries.conf mirror, and print hello, world", { skip, timeout: 10 * 60_000 }, async () => {
  const dockerfiles = quotedDockerfiles(seedText("002"));
  assert.equal(dockerfiles.length, 2);
  const { dir, mstage } = project("seed-002", {
    "Dockerfile.numbered": dockerfiles[0]!,
    "Dockerfile.named": dockerfiles[1]!,
    "images.ts":
      `import { dockerfile } from "mstage";\n` +
      `export const numbered = dockerfile("./Dockerfile.numbered", { name: "numbered" });\n` +
      `export const named = dockerfile("./Dockerfile.named", { name: "named" });\n`,
  });
  const plan = expectOk(await mstage(["plan"]), "plan");
  assert.match(plan.stderr, /golang:1\.21 resolved through mirror 127\.0\.0\.1:\d+/);
  const up = expectOk(await mstage(["up", "--progress", "plain"]), "up");
  assert.match(up.stdout + up.stderr, /golang:1\.21 resolved through mirror/);
  const refs = layoutRefs(join(dir, "oci"));
  assert.deepEqual(Object.keys(refs).sort(), ["named", "numbered"]);
  for (const ref of ["numbered", "named"]) assert.equal(runImage(join(dir, "oci"), ref), "hello, world\n");
  // The two files differ only in how they name the first stage: the same layers and the same command.
  const [a, b] = ["named", "numbered"].map((r) => skopeoInspect(join(dir, "oci"), r, true) as { rootfs: unknown; config: { Cmd: string[] } });
  assert.deepEqual(a!.rootfs, b!.rootfs);
  assert.deepEqual(a!.config.Cmd, ["/bin/hello"]);

  // mstage convert writes an images.ts that plans cleanly and builds the same image.
  const converted = project("seed-002-convert", { "Dockerfile.named": dockerfiles[1]! });
  expectOk(await converted.mstage(["convert", "Dockerfile.named", "--name", "named"]), "convert");
  expectOk(await converted.mstage(["plan"]), "plan of the converted images.ts");
  expectOk(await converted.mstage(["up", "--progress", "plain"]), "up of the converted images.ts");
  sameImage(join(dir, "oci"), join(converted.dir, "oci"), "named");

  // Editing the RUN line re-runs that step only, and plan names the line.
  writeFileSync(join(dir, "Dockerfile.named"), dockerfiles[1]!.replace("go build -o /bin/hello", "go build -trimpath -o /bin/hello"));
  const edited = expectOk(await mstage(["plan"]), "plan after an edit");
  assert.match(edited.stdout, /= named\.build\.2 +cached/);
  assert.match(edited.stdout, /~ named\.build\.3 +rebuild: Dockerfile\.named:10 RUN changed/);
});

const STACKER_TS = (file: string) => `import { stacker } from "mstage";\nexport const images = stacker("./${file}");\n`;

test("seed 000: the two-stage stacker file builds as written; the build_only layer is not in ./oci and the image prints Hello Stacker!", { skip, timeout: 10 * 60_000 }, async () => {
  const files = catHeredocs(seedText("000"));
  assert.deepEqual(Object.keys(files).sort(), ["hello.stacker.yaml", "hello_stacker.go"]);
  const { dir, mstage } = project("seed-000", { ...files, "images.ts": STACKER_TS("hello.stacker.yaml") });
  // hello re-runs even when a store has it, so its run's own test line shows, as in the seed's log.
  const up = expectOk(await mstage(["up", "--progress", "plain", "--no-cache=hello"]), "up");
  assert.match(up.stdout + up.stderr, /\[hello\] Hello Stacker!/);
  assert.deepEqual(Object.keys(layoutRefs(join(dir, "oci"))), ["hello"]);
  const bundle = unpack(join(dir, "oci"), "hello");
  cleanup.push(bundle);
  const paths = listRootfs(bundle);
  assert.ok(paths.includes("hello_stacker") && !paths.some((p) => p.startsWith("stacker")), `rootfs: ${paths.filter((p) => !p.includes("/")).join(" ")}`);
  const r = runBundle(bundle, { args: ["/hello_stacker"] });
  assert.equal(r.stdout, "Hello Stacker!\n", r.stderr);

  const converted = project("seed-000-convert", files);
  expectOk(await converted.mstage(["convert", "hello.stacker.yaml"]), "convert");
  assert.match(readFileSync(join(converted.dir, "images.ts"), "utf8"), /^export const hello = stage\("hello"/m);
  expectOk(await converted.mstage(["up", "--progress", "plain"]), "up of the converted images.ts");
  sameImage(join(dir, "oci"), join(converted.dir, "oci"), "hello");
});

test("seed 001: a tar made by a build_only layer is the next layer's rootfs; a bind the build layer writes is overlaid into a distroless layer", { skip, timeout: 10 * 60_000 }, async () => {
  const blocks = indentedBlocks(seedText("001"));
  assert.equal(blocks.length, 3);

  const tar = project("seed-001-tar", { "stacker.yaml": blocks[0]!, "images.ts": STACKER_TS("stacker.yaml") });
  expectOk(await tar.mstage(["up", "--progress", "plain"]), "up (tar)");
  assert.deepEqual(Object.keys(layoutRefs(join(tar.dir, "oci"))), ["contents"]);
  const contents = unpack(join(tar.dir, "oci"), "contents");
  cleanup.push(contents);
  assert.deepEqual(listRootfs(contents), ["first", "second"]);

  // The second example runs yum in ubuntu:latest, which has no yum: stacker itself cannot build it
  // either. Its translation still plans.
  const yum = project("seed-001-yum", { "stacker.yaml": blocks[1]!, "images.ts": STACKER_TS("stacker.yaml") });
  const plan = expectOk(await yum.mstage(["plan"]), "plan (yum)");
  assert.match(plan.stdout, /\+ build +new[\s\S]*\+ contents +new/);

  // The third writes into the host's /tmp/dir_to_overlay through a bind (as written in the seed).
  const host = "/tmp/dir_to_overlay";
  rmSync(host, { recursive: true, force: true });
  mkdirSync(host);
  cleanup.push(host);
  const ov = project("seed-001-overlay", { "stacker.yaml": blocks[2]!, "images.ts": STACKER_TS("stacker.yaml") });
  expectOk(await ov.mstage(["up", "--progress", "plain"]), "up (overlay_dirs)");
  assert.ok(existsSync(join(host, "binaryfile")), "the build layer wrote into the bound host dir");
  const image = unpack(join(ov.dir, "oci"), "contents");
  cleanup.push(image);
  assert.ok(listRootfs(image).includes("dir_to_overlay/binaryfile"));
  assert.deepEqual(Object.keys(layoutRefs(join(ov.dir, "oci"))), ["contents"]);
});

test("seed 003: the openSUSE Dockerfile translates and plans; building it needs zypper's repositories and GitHub, which this machine cannot reach", { skip }, async () => {
  const [text] = fenced(seedText("003"), "dockerfile");
  const { mstage } = project("seed-003", { Dockerfile: text!, "images.ts": `import { dockerfile } from "mstage";\nexport const echo = dockerfile("./Dockerfile", { name: "echo-server" });\n` });
  const plan = expectOk(await mstage(["plan", "--offline"]), "plan --offline");
  // Four steps in the first stage (two RUNs, WORKDIR, the RUN after ENV), two in the second, then the image.
  const names = [...plan.stdout.matchAll(/^\+ (\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(names, ["echo-server.0.1", "echo-server.0.2", "echo-server.0.3", "echo-server.0.4", "echo-server.1.1", "echo-server.1.2", "echo-server"]);
});
