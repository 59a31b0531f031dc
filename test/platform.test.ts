// Multi-platform builds through the built CLI: a stage with platforms on an offline two-platform
// base (busybox-static for amd64 and arm64), run natively and through qemu's binfmt_misc handler,
// written as an OCI image index, pushed and copied with skopeo --all, used again as an image() base
// with each platform pinned in images.lock; and the errors for a base without the platform and for
// a foreign run with no emulator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { execSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arm64Emulation, multiarchUnavailable, writeMultiarchLayout } from "./helpers/multiarch.ts";
import { registryUnavailable, startRegistry } from "./helpers/registry.ts";
import { expectOk, mstageAs, MSTAGE_BIN, runBundle, testUsers, tool, unpack, userDir, writeAs } from "./up-harness.ts";

const missing = ["skopeo", "umoci", "runc"].filter((t) => !tool(t));
const skip = multiarchUnavailable() ?? arm64Emulation() ?? (missing.length ? `missing ${missing.join(", ")}: run .ci/setup` : undefined);

const PROJECT = `import { oci, stage } from "mstage";
export const hello = stage("hello", {
  platforms: ["linux/amd64", "linux/arm64"],
  from: oci("./base", "busybox"),
  run: "uname -m > /arch",
  cmd: ["/bin/cat", "/arch"],
  tags: [TAGS],
});
`;

type Desc = { mediaType: string; digest: string; platform?: { architecture: string; os: string } };
const blob = (layout: string, digest: string) => JSON.parse(readFileSync(join(layout, "blobs", "sha256", digest.slice(7)), "utf8"));

/** The index a layout's ref points at, and per architecture its manifest and config. */
function indexOf(layout: string, ref: string) {
  const top = (JSON.parse(readFileSync(join(layout, "index.json"), "utf8")).manifests as (Desc & { annotations?: Record<string, string> })[]).find(
    (m) => m.annotations?.["org.opencontainers.image.ref.name"] === ref,
  );
  assert.ok(top, `no ref ${ref} in ${layout}`);
  assert.equal(top.mediaType, "application/vnd.oci.image.index.v1+json", "the ref is an image index");
  const manifests = blob(layout, top.digest).manifests as Desc[];
  const byArch = Object.fromEntries(manifests.map((m) => [m.platform?.architecture, { manifest: m, config: blob(layout, blob(layout, m.digest).config.digest) }]));
  return { digest: top.digest, manifests, byArch };
}

/** One platform's image of a multi-platform ref, unpacked (skopeo picks it out of the index). */
function unpackPlatform(layout: string, ref: string, arch: string): string {
  const single = mkdtempSync(join(tmpdir(), "mstage-platform-"));
  execFileSync("skopeo", ["copy", "-q", "--override-arch", arch, `oci:${layout}:${ref}`, `oci:${single}:${arch}`]);
  const bundle = unpack(single, arch);
  rmSync(single, { recursive: true, force: true });
  return bundle;
}

for (const user of testUsers()) {
  test(`a stage with platforms builds an image index, its arm64 image through qemu (as ${user.name})`, { skip: skip ?? user.skip, timeout: 5 * 60_000 }, async (t) => {
    const dir = userDir(user.name, "platform");
    const store = userDir(user.name, "platform-store");
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    t.after(() => rmSync(store, { recursive: true, force: true }));
    writeMultiarchLayout(join(dir, "base"));
    if (user.name !== testUsers()[0]!.name) execFileSync("chown", ["-R", `${user.name}:${user.name}`, join(dir, "base")]);
    writeAs(user.name, join(dir, "images.ts"), PROJECT.replace("TAGS", ""));
    const mstage = mstageAs(user.name, dir, store);

    const plan = expectOk(await mstage(["plan"]), "plan");
    assert.match(plan.stdout, /\+ hello \[linux\/amd64\]\s+new/);
    assert.match(plan.stdout, /\+ hello \[linux\/arm64\]\s+new/);
    const only = expectOk(await mstage(["plan", "--platform", "linux/arm64"]), "plan --platform");
    assert.match(only.stdout, /hello \[linux\/arm64\]/);
    assert.doesNotMatch(only.stdout, /linux\/amd64/, "--platform restricts the build to that platform");

    expectOk(await mstage(["up", "--progress", "plain"]), "up");
    const layout = join(dir, "oci");
    const index = indexOf(layout, "hello");
    assert.deepEqual(index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`), ["linux/amd64", "linux/arm64"]);
    assert.equal(index.byArch.arm64!.config.architecture, "arm64", "the arm64 image's config says arm64");
    assert.equal(index.byArch.amd64!.config.architecture, "amd64");
    assert.ok(index.byArch.amd64!.config.rootfs.diff_ids.length === 2 && index.byArch.arm64!.config.rootfs.diff_ids.length === 2);

    for (const [arch, uname] of [["amd64", "x86_64"], ["arm64", "aarch64"]] as const) {
      const bundle = unpackPlatform(layout, "hello", arch);
      try {
        assert.equal(readFileSync(join(bundle, "rootfs/arch"), "utf8").trim(), uname, `run in the ${arch} stage saw uname -m ${uname}`);
        const r = runBundle(bundle);
        assert.equal(r.code, 0, `runc run of the ${arch} image: ${r.stderr}`);
        assert.equal(r.stdout.trim(), uname);
        if (arch === "arm64") assert.match(execFileSync("file", ["-L", join(bundle, "rootfs/bin/busybox")], { encoding: "utf8" }), /ARM aarch64/);
      } finally {
        rmSync(bundle, { recursive: true, force: true });
      }
    }

    const again = expectOk(await mstage(["up"]), "second up");
    assert.match(again.stdout, /0 built, 2 cached/);
    assert.equal(indexOf(layout, "hello").digest, index.digest, "the same inputs give the same index");

    // A docker-archive has no index: it gets this machine's platform, or the one --platform chose.
    const archive = join(dir, "hello.tar");
    const host = expectOk(await mstage(["up", "--output", `docker-archive:${archive}`]), "up --output docker-archive");
    assert.match(host.stdout + host.stderr, /docker-archive has no image index: \S+ is written for linux\/amd64 only/);
    assert.equal(archiveArchitecture(archive), "amd64");
    expectOk(await mstage(["up", "--platform", "linux/arm64", "--output", `docker-archive:${archive}`]), "up --platform linux/arm64 --output docker-archive");
    assert.equal(archiveArchitecture(archive), "arm64", "--platform chooses the archive's image");
  });
}

test("a pushed index keeps both platforms through skopeo copy --all and serves as a multi-platform image() base pinned per platform", { skip: skip ?? registryUnavailable(), timeout: 5 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const [a, b] = [await startRegistry(), await startRegistry()];
  t.after(() => Promise.all([a.stop(), b.stop()]));
  const dir = userDir(user, "platform-push");
  const store = userDir(user, "platform-push-store");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  t.after(() => rmSync(store, { recursive: true, force: true }));
  writeMultiarchLayout(join(dir, "base"));
  writeAs(user, join(dir, "images.ts"), PROJECT.replace("TAGS", `"${a.host}/out/hello:1"`));
  const mstage = mstageAs(user, dir, store);
  expectOk(await mstage(["up", "--push"]), "up --push");

  const raw = (ref: string) => JSON.parse(execFileSync("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`], { encoding: "utf8" }));
  const platforms = (i: { manifests: Desc[] }) => i.manifests.map((m) => m.platform?.architecture).sort();
  assert.deepEqual(platforms(raw(`${a.host}/out/hello:1`)), ["amd64", "arm64"], "the registry got the index");
  execFileSync("skopeo", ["copy", "-q", "--all", "--src-tls-verify=false", "--dest-tls-verify=false", `docker://${a.host}/out/hello:1`, `docker://${b.host}/copy/hello:1`]);
  assert.deepEqual(platforms(raw(`${b.host}/copy/hello:1`)), ["amd64", "arm64"], "skopeo copy --all kept both platforms");
  const arm = raw(`${b.host}/copy/hello:1`).manifests.find((m: Desc) => m.platform?.architecture === "arm64");

  // The copy as a base: each platform's image pulled by its own manifest, and pinned so.
  writeAs(user, join(dir, "images.ts"), `import { image, stage } from "mstage";
export const again = stage("again", {
  platforms: ["linux/amd64", "linux/arm64"],
  from: image("${b.host}/copy/hello:1"),
  run: "cat /arch > /arch-of-base && uname -m >> /arch-of-base",
});
`);
  expectOk(await mstage(["up", "--progress", "plain"]), "up on the pushed index");
  const lock = JSON.parse(readFileSync(join(dir, "images.lock"), "utf8"));
  assert.equal(lock.platforms[`${b.host}/copy/hello:1`]["linux/arm64"], arm.digest, "images.lock pins the arm64 manifest");
  assert.equal(Object.keys(lock.platforms[`${b.host}/copy/hello:1`]).length, 2);
  const bundle = unpackPlatform(join(dir, "oci"), "again", "arm64");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  assert.equal(readFileSync(join(bundle, "rootfs/arch-of-base"), "utf8"), "aarch64\naarch64\n");
});

/**
 * Runs argv in a user namespace (as its root, over ids 0-299999) with a mount namespace whose
 * binfmt_misc is a fresh, empty instance (Linux 6.7+): a machine without any emulator.
 */
function withoutBinfmt(argv: string[], cwd: string, env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const script = [
      "echo ready; read go || exit 98",
      "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 97",
      // Not a fresh instance (an older kernel shares the host's): no test of "no handler" here.
      "if ls /proc/sys/fs/binfmt_misc | grep -qv -e '^register$' -e '^status$'; then echo 'binfmt_misc is shared with the host'; exit 99; fi",
      'exec "$@"',
    ].join("\n");
    const child = spawn("unshare", ["--user", "--mount", "--", "sh", "-c", script, "sh", ...argv], { cwd, env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let mapped = false;
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      out += c;
      if (!mapped && out.startsWith("ready\n")) {
        mapped = true;
        out = out.slice("ready\n".length);
        execSync(`echo '0 0 300000' > /proc/${child.pid}/uid_map && echo '0 0 300000' > /proc/${child.pid}/gid_map`);
        child.stdin.end("go\n");
      }
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, out }));
  });
}

test("errors: a base without the platform, and a foreign run with no binfmt handler", { skip: skip ?? (process.getuid!() !== 0 ? "needs root to give a user namespace an id range" : undefined), timeout: 3 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const dir = userDir(user, "platform-errors");
  const store = userDir(user, "platform-errors-store");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  t.after(() => rmSync(store, { recursive: true, force: true }));
  writeMultiarchLayout(join(dir, "base"));
  const mstage = mstageAs(user, dir, store);

  writeAs(user, join(dir, "images.ts"), PROJECT.replace("TAGS", "").replace('"linux/arm64"]', '"linux/arm64", "linux/s390x"]'));
  const r = await mstage(["up"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /stage "hello \[linux\/s390x\]", key "from": oci\("\.\/base", "busybox"\) has no image for platform linux\/s390x; available: linux\/amd64, linux\/arm64: build this stage for one of those/);

  writeAs(user, join(dir, "images.ts"), PROJECT.replace("TAGS", ""));
  const probe = await withoutBinfmt(["true"], dir, {});
  if (probe.code !== 0) return t.skip(`no per-namespace binfmt_misc here (Linux 6.7+ has one): ${probe.out.trim()}`);
  // A fresh store: the failed up above built both platforms it could.
  const fresh = userDir(user, "platform-errors-store2");
  t.after(() => rmSync(fresh, { recursive: true, force: true }));
  const e = await withoutBinfmt([process.execPath, MSTAGE_BIN, "up"], dir, { MSTAGE_STORE: fresh, NO_COLOR: "1" });
  assert.equal(e.code, 1, e.out);
  assert.match(e.out, /stage "hello \[linux\/arm64\]", key "run": run: this stage is built for linux\/arm64; this linux\/amd64 machine cannot run linux\/arm64 binaries natively, and no binfmt_misc handler is registered for it: install emulators with `sudo apt-get install qemu-user-static binfmt-support`/);
  const doctor = await withoutBinfmt([process.execPath, MSTAGE_BIN, "doctor"], dir, { MSTAGE_STORE: store, NO_COLOR: "1" });
  assert.match(doctor.out, /! emulation of other platforms .*: cannot run linux\/arm64, linux\/arm\/v7: no binfmt_misc handler with the F flag\n\s+fix: sudo apt-get install qemu-user-static binfmt-support/);
  assert.ok(existsSync(join(dir, "base")));
});

/** The architecture in the config of a docker-archive's one image. */
function archiveArchitecture(archive: string): string {
  const read = (member: string) => execFileSync("tar", ["-xOf", archive, member], { encoding: "utf8" });
  const [entry, ...rest] = JSON.parse(read("manifest.json")) as { Config: string }[];
  assert.equal(rest.length, 0, "one image in the archive");
  return (JSON.parse(read(entry!.Config)) as { architecture: string }).architecture;
}
