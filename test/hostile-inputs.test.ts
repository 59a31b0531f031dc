// Input from outside (oci() layouts, images.lock, state files, tarballs, owners, the store's disk)
// crafted to break mstage: each case must end in one clear error naming what was wrong, never in
// "internal error (a bug in mstage)", and never read or write outside where it should.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { MSTAGE_BIN, mstage } from "./helpers/mstage-cli.ts";

const sha = (b: string | Buffer) => "sha256:" + createHash("sha256").update(b).digest("hex");

function project(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), "mstage-hostile-"));
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), body);
  }
  return dir;
}

function noInternalError(r: { stderr: string }): void {
  assert.doesNotMatch(r.stderr, /internal error|a bug in mstage|at .*\.m?[jt]s:\d+/, r.stderr);
}

/** An OCI layout at `dir` with one image, ref "b", whose manifest names `configDigest` as its config. */
function layoutWithConfig(dir: string, configDigest: string): void {
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: 100 },
    layers: [],
  });
  writeFileSync(join(dir, "blobs", "sha256", sha(manifest).slice(7)), manifest);
  writeFileSync(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha(manifest), size: manifest.length, annotations: { "org.opencontainers.image.ref.name": "b" } }],
    }),
  );
}

const OCI_PROJECT = `import { inline, oci, stage } from "mstage";
export const app = stage("app", { from: oci("./base", "b"), copy: { "/f": inline("x\\n") } });
`;

test("an oci() base whose manifest names its config sha256:../../../x.json is refused, naming the stage; the file is not read", () => {
  const dir = project({ "images.ts": OCI_PROJECT });
  try {
    layoutWithConfig(join(dir, "base"), "sha256:../../../x.json");
    // Where the path-like digest points (beside the layout): a valid config, so only the digest check can refuse it.
    writeFileSync(join(dir, "x.json"), JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
    const r = mstage(dir, ["--store", join(dir, "store"), "up", "-q"]);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.stderr, /app/);
    assert.match(r.stderr, /"sha256:\.\.\/\.\.\/\.\.\/x\.json", which is not a sha256 digest/);
    noInternalError(r);
    assert.ok(!existsSync(join(dir, "oci")), "no output was written");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an oci() index naming a manifest by a path-like digest is refused by plan and up alike", () => {
  const dir = project({ "images.ts": OCI_PROJECT });
  try {
    layoutWithConfig(join(dir, "base"), sha("{}"));
    const index = JSON.parse(readFileSync(join(dir, "base", "index.json"), "utf8"));
    index.manifests[0].digest = "sha256:../../index.json";
    writeFileSync(join(dir, "base", "index.json"), JSON.stringify(index));
    for (const cmd of ["plan", "up"]) {
      const r = mstage(dir, ["--store", join(dir, "store"), cmd, "-q"]);
      assert.equal(r.code, 1, `${cmd}: ${r.stderr}`);
      assert.match(r.stderr, /"sha256:\.\.\/\.\.\/index\.json", which is not a sha256 digest/, cmd);
      noInternalError(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("images.lock and .mstage/state.json digests that are not digests are errors naming the file", () => {
  const dir = project({
    "images.ts": `import { image, stage } from "mstage";\nexport const app = stage("app", { from: image("127.0.0.1:1/x:1"), cmd: ["/x"] });\n`,
    "images.lock": JSON.stringify({ images: { "127.0.0.1:1/x:1": "sha256:../../../etc/passwd" }, debian: {} }),
  });
  try {
    const lock = mstage(dir, ["--store", join(dir, "store"), "plan"]);
    assert.equal(lock.code, 1, lock.stderr);
    assert.match(lock.stderr, /images\.lock: images\["127\.0\.0\.1:1\/x:1"\] is "sha256:\.\.\/\.\.\/\.\.\/etc\/passwd", not a sha256 digest/);
    noInternalError(lock);

    rmSync(join(dir, "images.lock"));
    mkdirSync(join(dir, ".mstage"), { recursive: true });
    writeFileSync(join(dir, ".mstage", "state.json"), JSON.stringify({ version: 1, stages: { app: { layerKey: sha("k"), configKey: sha("c"), inputs: {}, builtAt: "", manifestDigest: "sha256:../../x" } } }));
    const state = mstage(dir, ["--store", join(dir, "store"), "up", "--offline"]);
    assert.equal(state.code, 1, state.stderr);
    assert.match(state.stderr, /state\.json is not a valid mstage state file \(stage app has manifestDigest "sha256:\.\.\/\.\.\/x", not a sha256 digest\)/);
    noInternalError(state);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Tar archives broken in the ways a bad download or a hostile file is. */
function brokenTars(dir: string): Record<string, RegExp> {
  const good = tarOf("small.txt", Buffer.from("hello"));
  writeFileSync(join(dir, "junk.tar"), Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 251)));
  writeFileSync(join(dir, "trunc.tar"), good.subarray(0, 700));
  writeFileSync(join(dir, "trunc.tar.gz"), gzipSync(good).subarray(0, 40));
  const badSize = Buffer.from(good);
  badSize.write("zzzzzzzzzzz\0", 124, "latin1");
  checksum(badSize);
  writeFileSync(join(dir, "badsize.tar"), badSize);
  // A pax header entry claiming 64 MiB of records.
  const pax = Buffer.alloc(512);
  pax.write("PaxHeaders/x", 0, "latin1");
  pax.write("0000644\0", 100, "latin1");
  pax.write("0000000\0", 108, "latin1");
  pax.write("0000000\0", 116, "latin1");
  pax.write((64 << 20).toString(8).padStart(11, "0") + "\0", 124, "latin1");
  pax.write("00000000000\0", 136, "latin1");
  pax.write("x", 156, "latin1");
  pax.write("ustar\u000000", 257, "latin1");
  checksum(pax);
  writeFileSync(join(dir, "bigpax.tar"), Buffer.concat([pax, Buffer.alloc(1 << 20, "a")]));
  return {
    "junk.tar": /is not a valid tar: it is not a tar archive/,
    "trunc.tar": /is not a valid tar: it is truncated/,
    "trunc.tar.gz": /is not a valid gzip-compressed tar: its gzip stream is truncated/,
    "badsize.tar": /is not a valid tar: a header holds garbage/,
    "bigpax.tar": /is not a valid tar: a pax or long-name header is larger than mstage accepts/,
  };
}

function tarOf(name: string, body: Buffer): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, "latin1");
  h.write("0000644\0", 100, "latin1");
  h.write("0000000\0", 108, "latin1");
  h.write("0000000\0", 116, "latin1");
  h.write(body.length.toString(8).padStart(11, "0") + "\0", 124, "latin1");
  h.write("00000000000\0", 136, "latin1");
  h.write("0", 156, "latin1");
  h.write("ustar\u000000", 257, "latin1");
  checksum(h);
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([h, body, pad, Buffer.alloc(1024)]);
}

function checksum(h: Buffer): void {
  h.fill(" ", 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
}

test("a tarball() that is not a tar, truncated, gzip-truncated, with a garbage size or an oversized pax header: one error naming stage and file", () => {
  const dir = project({});
  try {
    for (const [file, why] of Object.entries(brokenTars(dir))) {
      writeFileSync(join(dir, "images.ts"), `import { local, stage, tarball } from "mstage";\nexport const app = stage("app", { from: tarball(local("./${file}")), cmd: ["/x"] });\n`);
      const r = mstage(dir, ["--store", join(dir, "store"), "up", "-q"]);
      assert.equal(r.code, 1, `${file}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`stage "app", key "from": tarball\\(local\\("\\./${file.replace(/\./g, "\\.")}"\\)\\)`), file);
      assert.match(r.stderr, why, file);
      noInternalError(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an oci() base whose layer is not a tar: one error naming the stage and the base", () => {
  const dir = project({ "images.ts": OCI_PROJECT });
  try {
    const layout = join(dir, "base");
    const junk = Buffer.from("this is not a tar archive, not even close".repeat(40));
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [sha(junk)] } }));
    mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
    writeFileSync(join(layout, "blobs", "sha256", sha(junk).slice(7)), junk);
    writeFileSync(join(layout, "blobs", "sha256", sha(config).slice(7)), config);
    layoutWithConfig(layout, sha(config));
    const manifestFile = readFileSync(join(layout, "index.json"), "utf8");
    const mdigest = JSON.parse(manifestFile).manifests[0].digest as string;
    const manifest = JSON.parse(readFileSync(join(layout, "blobs", "sha256", mdigest.slice(7)), "utf8"));
    manifest.config.size = config.length;
    manifest.layers = [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(junk), size: junk.length }];
    const bytes = JSON.stringify(manifest);
    writeFileSync(join(layout, "blobs", "sha256", sha(bytes).slice(7)), bytes);
    writeFileSync(join(layout, "index.json"), manifestFile.replace(mdigest, sha(bytes)).replace(/"size":\d+/, `"size":${bytes.length}`));
    const r = mstage(dir, ["--store", join(dir, "store"), "up", "-q"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`stage "app", key "from": base b: layer ${sha(junk)} is not a valid tar: it is not a tar archive`));
    noInternalError(r);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an owner outside the mapped ids or no valid id, and an overlong stage name, are errors that say the limit", () => {
  const dir = project({});
  try {
    const cases: [string, RegExp][] = [
      [`stage("app", { from: scratch(), copy: { "/f": inline("x", { owner: "4294967295:0" }) } })`, /inline\(\): "owner" ids are at most 4294967294/],
      [`stage("app", { from: scratch(), copy: { "/f": inline("x", { owner: "99999999999:0" }) } })`, /inline\(\): "owner" ids are at most 4294967294/],
      [`stage("app", { from: scratch(), copy: { "/f": inline("x", { owner: "0:3000000000" }) } })`, /stage "app", key "copy\["\/f"\]": owner "0:3000000000": gid 3000000000 is not mapped into the build's user namespace \(mapped: [\d, -]+\)/],
      [`stage("${"n".repeat(129)}", { from: scratch(), copy: { "/f": inline("x") } })`, /the name is 129 characters long; stage names are at most 128/],
    ];
    for (const [decl, why] of cases) {
      writeFileSync(join(dir, "images.ts"), `import { inline, scratch, stage } from "mstage";\nexport const app = ${decl};\n`);
      const r = mstage(dir, ["--store", join(dir, "store"), "up", "-q"]);
      assert.equal(r.code, 1, `${decl}: ${r.stderr}`);
      assert.match(r.stderr, why, decl);
      noInternalError(r);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a step that leaves a file name that is not UTF-8 gets one error naming the stage, its run and the name, with either lister", (t) => {
  if (!existsSync("/bin/busybox")) return t.skip("busybox-static is not installed (/bin/busybox): run .ci/setup");
  const dir = project({
    "images.ts": `import { local, scratch, stage } from "mstage";
export const app = stage("app", {
  from: scratch(),
  copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) },
  shell: ["/bin/busybox", "sh", "-c"],
  run: "/bin/busybox mkdir /d && /bin/busybox touch \\"/d/$(/bin/busybox printf 'f\\\\377o')\\"",
});
`,
  });
  try {
    for (const listdir of ["", "js"]) {
      const r = mstage(dir, ["--store", join(dir, `store-${listdir || "native"}`), "up", "-q"], { MSTAGE_LISTDIR: listdir });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^error: images\.ts:2:\d+: stage "app", key "run": \/d\/f\\xffo is a file name that is not UTF-8, and a layer holds UTF-8 names only: rename or remove it in the step that makes it\n$/, `MSTAGE_LISTDIR=${listdir}`);
      noInternalError(r);
      assert.ok(!existsSync(join(dir, "oci")), "no output written");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a local() file whose name is not UTF-8 is one error naming the source and the file, with either lister; excluded, it is left out", () => {
  const dir = project({
    "images.ts": `import { local, scratch, stage } from "mstage";
export const app = stage("app", { from: scratch(), copy: { "/src": local("src", { exclude: process.env.EXCLUDE ? ["f*o"] : [] }) } });
`,
    "src/ok": "ok\n",
    "src/sub/x": "x\n",
  });
  // Node cannot make the name (it writes strings as UTF-8): the shell can.
  spawnSync("sh", ["-c", "touch \"$(printf 'f\\377o')\"; cd sub && ln -s ok \"$(printf 'l\\376')\""], { cwd: join(dir, "src") });
  assert.equal(readdirSync(join(dir, "src"), { encoding: "buffer" }).length, 3, "the name is made");
  try {
    for (const listdir of ["", "js"]) {
      for (const command of ["plan", "up"]) {
        const r = mstage(dir, ["--store", join(dir, "store"), command, "-q"], { MSTAGE_LISTDIR: listdir });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /^error: images\.ts:2:\d+: stage "app", key "copy": local src: f\\xffo is a file name that is not UTF-8, and an image layer holds UTF-8 names only: rename it, or leave it out \(exclude, \.mstageignore\)\n$/, `${command}, MSTAGE_LISTDIR=${listdir}`);
        noInternalError(r);
        assert.ok(!existsSync(join(dir, "oci")), "no output written");
      }
    }
    rmSync(join(dir, "src/f\uFFFDo"), { force: true });
    spawnSync("sh", ["-c", "rm -f \"$(printf 'f\\377o')\""], { cwd: join(dir, "src") });
    const r = mstage(dir, ["--store", join(dir, "store"), "up", "-q"]);
    assert.equal(r.code, 1, "the one in a subdirectory too");
    assert.match(r.stderr, /local src: sub\/l\\xfe is a file name that is not UTF-8/);
    spawnSync("sh", ["-c", "touch \"$(printf 'f\\377o')\"; rm \"sub/$(printf 'l\\376')\""], { cwd: join(dir, "src") });
    const excluded = mstage(dir, ["--store", join(dir, "store"), "up", "-q"], { EXCLUDE: "1" });
    assert.equal(excluded.code, 0, excluded.stderr);
    const files = spawnSync("sh", ["-c", "for b in oci/blobs/sha256/*; do tar -tzf $b 2>/dev/null; done"], { cwd: dir, encoding: "utf8" }).stdout;
    assert.deepEqual(files.split("\n").filter(Boolean).sort(), ["src/", "src/ok", "src/sub/", "src/sub/x"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a bind whose host directory holds a name that is not UTF-8 is one error naming the bind and the file", () => {
  const dir = project({
    "images.ts": `import { scratch, stage } from "mstage";
export const app = stage("app", { from: scratch(), shell: ["/bin/busybox", "sh", "-c"], binds: { "/notes": { host: "./notes", readonly: true } }, run: "true" });
`,
    "notes/a.txt": "a\n",
  });
  spawnSync("sh", ["-c", "touch \"$(printf 'n\\377')\""], { cwd: join(dir, "notes") });
  try {
    const r = mstage(dir, ["--store", join(dir, "store"), "plan"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error: images\.ts:2:\d+: stage "app", key "binds": local \.\/notes: n\\xff is a file name that is not UTF-8, and a bind's key names its files in UTF-8 only: rename it\n$/);
    noInternalError(r);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a --store the user cannot write is one error naming it", (t) => {
  if (spawnSync("id", ["mstage-test"]).status !== 0) return t.skip("the mstage-test user is missing: run .ci/setup");
  const dir = project({ "images.ts": `import { inline, scratch, stage } from "mstage";\nexport const app = stage("app", { from: scratch(), copy: { "/f": inline("x") } });\n` });
  const store = mkdtempSync(join(tmpdir(), "mstage-rootstore-"));
  try {
    chmodSync(dir, 0o777);
    chmodSync(store, 0o755);
    const r = spawnSync("setpriv", ["--reuid", "mstage-test", "--regid", "mstage-test", "--init-groups", process.execPath, MSTAGE_BIN, "--store", join(store, "s"), "up", "-q"], {
      cwd: dir,
      encoding: "utf8",
      env: { ...process.env, HOME: dir, NO_COLOR: "1" },
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot use ${join(store, "s")} as the store: EACCES.*pass --store \\(or set MSTAGE_STORE to\\) a directory you can write`));
    noInternalError(r);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(store, { recursive: true, force: true });
  }
});

test("a full disk while building names the store, leaves ./oci byte-identical and the store usable", (t) => {
  if (process.getuid?.() !== 0) return t.skip("mounting a small tmpfs store needs root");
  const dir = project({});
  const store = mkdtempSync(join(tmpdir(), "mstage-fullstore-"));
  if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", store]).status !== 0) return t.skip("cannot mount a tmpfs here");
  try {
    const file = (size: number) => {
      // Random bytes, so the layer's gzip on export is as large as the layer itself.
      writeFileSync(join(dir, "data.bin"), randomBytes(size));
      writeFileSync(join(dir, "images.ts"), `import { local, scratch, stage } from "mstage";\nexport const app = stage("app", { from: scratch(), copy: { "/data": local("./data.bin") } });\n`);
    };
    file(10_000);
    assert.equal(mstage(dir, ["--store", store, "up", "-q"]).code, 0);
    const snapshot = () => Object.fromEntries(treeListingOf(join(dir, "oci")));
    const before = snapshot();
    for (const size of [5_000_000, 1_800_000]) {
      // 5 MB cannot even be copied in; 1.8 MB can, but its gzip, a second copy, does not fit.
      file(size);
      const r = mstage(dir, ["--store", store, "up", "-q"]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`stage "app": no space left on the device of the store ${store}`));
      noInternalError(r);
      assert.deepEqual(snapshot(), before, "./oci changed");
    }
    file(10_000);
    const again = mstage(dir, ["--store", store, "up", "-q"]);
    assert.equal(again.code, 0, again.stderr);
    const verify = mstage(dir, ["--store", store, "gc", "--verify"]);
    assert.match(verify.stdout, /all intact/, verify.stdout + verify.stderr);
  } finally {
    spawnSync("umount", [store]);
    rmSync(store, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});

function treeListingOf(dir: string): [string, string][] {
  const out: [string, string][] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const p = join(rel, name);
      if (statSync(join(dir, p)).isDirectory()) walk(p);
      else out.push([p, createHash("sha256").update(readFileSync(join(dir, p))).digest("hex")]);
    }
  };
  walk("");
  return out;
}
