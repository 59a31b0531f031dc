// The native lister (packages/core/native/listdir.c), compiled here as the build compiles it: list()
// gives listDirectory's answer byte for byte, scan() what a layer commit's lstat walk and getfattr
// give, or none where JavaScript must answer (or throw) itself.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error: a build script, without types
import { buildListdir } from "../scripts/build.mjs";
import { listDirectory, loadLister, type NativeLister } from "../packages/core/src/local/walk-pool.ts";
import { digestLayer, digestScanning, scanTree } from "../packages/runtime/src/layer/commit.ts";
import { readTreeXattrs } from "../packages/runtime/src/layer/xattr.ts";
import { MSTAGE_BIN, copyFixture } from "./helpers/mstage-cli.ts";

let lister: NativeLister;
const work = fs.mkdtempSync(join(tmpdir(), "mstage-listdir-"));

before(async () => {
  const out = join(work, "listdir.node");
  const why = (await buildListdir(out)) as string | undefined;
  // .ci/setup installs gcc and libc6-dev: without them this is a broken setup, not a skip.
  assert.equal(why, undefined, `the native lister did not compile: ${why}`);
  lister = loadLister(out);
});

/** A fresh directory under the test's own. */
function dir(name: string): string {
  const d = join(work, name);
  fs.mkdirSync(d);
  return d;
}

function same(d: string): void {
  const native = lister.list(d);
  assert.ok(native, `the native lister left ${d} to listDirectory`);
  assert.deepEqual(native, listDirectory(fs, d));
}

test("every kind of entry, with the numbers and link targets Node gives", async () => {
  const d = dir("kinds");
  fs.writeFileSync(join(d, "file"), "content");
  fs.writeFileSync(join(d, "empty"), "");
  fs.linkSync(join(d, "file"), join(d, "hardlink"));
  fs.mkdirSync(join(d, "sub"));
  fs.symlinkSync("file", join(d, "link"));
  fs.symlinkSync("/nowhere/at/all", join(d, "dangling"));
  fs.symlinkSync("x/".repeat(2000) + "end", join(d, "long-link"));
  fs.symlinkSync("tärget-😀", join(d, "unicode-link"));
  assert.equal(spawnSync("mkfifo", [join(d, "fifo")]).status, 0);
  const server: Server = createServer();
  await new Promise<void>((up) => server.listen(join(d, "socket"), up));
  if (process.getuid!() === 0) assert.equal(spawnSync("mknod", [join(d, "null"), "c", "1", "3"]).status, 0);
  else console.log("# not root: no device node in the listing (mknod needs root)");
  // Times with nanoseconds: mtimeMs and ctimeMs are Node's own sec * 1e3 + nsec / 1e6.
  fs.utimesSync(join(d, "file"), 1_700_000_000.123456, 1_700_000_000.987654);
  fs.chmodSync(join(d, "empty"), 0o4755);
  try {
    same(d);
    const l = lister.list(d)!;
    assert.equal(l.links.length, 4);
    assert.equal(l.names.split("\0").length, process.getuid!() === 0 ? 11 : 10);
  } finally {
    server.close();
  }
});

test("names sort as JavaScript sorts them: uppercase, punctuation, spaces, two- and three-byte characters", () => {
  const d = dir("names");
  for (const name of ["b", "B", "a", "Z", "_", "-dash", "~", "name with space", "é", "e", "ü-file", "ß", "日本", "中", "Ω", "ｚ", "\u00a0nbsp", "a.b", "a-b", "10", "9", "\ufffd"]) {
    fs.writeFileSync(join(d, name), name);
  }
  same(d);
});

test("a thousand names and more: the buffers grow", () => {
  const d = dir("many");
  for (let i = 0; i < 3000; i++) fs.writeFileSync(join(d, `file-${String(i).padStart(5, "0")}-${"n".repeat(i % 200)}`), "");
  same(d);
});

test("names whose order or text Node may give differently are left to listDirectory", () => {
  // Beyond U+FFFF: UTF-16 sorts it below U+E000-U+FFFF, its bytes sort above.
  const astral = dir("astral");
  fs.writeFileSync(join(astral, "😀"), "");
  fs.writeFileSync(join(astral, "\uffee"), "");
  assert.equal(lister.list(astral), undefined);
  // Not UTF-8 at all: Node decodes it with a replacement character.
  const bytes = dir("bytes");
  fs.writeFileSync(Buffer.concat([Buffer.from(bytes + "/"), Buffer.from([0x66, 0xff, 0x6f])]), "");
  assert.equal(lister.list(bytes), undefined);
  // A symbolic link whose target is not UTF-8.
  const target = dir("target");
  fs.symlinkSync(Buffer.from([0x74, 0xc3, 0x28]), join(target, "link"));
  assert.equal(lister.list(target), undefined);
});

test("a directory gone is empty, as listDirectory has it; a file or an unreadable path is left to listDirectory's error", () => {
  same(join(work, "never-made"));
  const file = join(work, "a-file");
  fs.writeFileSync(file, "");
  assert.equal(lister.list(file), undefined);
  assert.throws(() => listDirectory(fs, file), { code: "ENOTDIR" });
  assert.equal(lister.list("/" + "x".repeat(5000)), undefined, "longer than PATH_MAX");
  if (process.getuid!() !== 0) {
    const closed = dir("closed");
    fs.chmodSync(closed, 0);
    assert.equal(lister.list(closed), undefined);
    assert.throws(() => listDirectory(fs, closed), { code: "EACCES" });
  } else console.log("# root: no unreadable directory to try (root reads every one)");
});

test("scan: a layer commit's listing and xattrs, as scanTree's lstat walk and getfattr give them, and the same layer digest", async () => {
  const root = dir("commit");
  const isRoot = process.getuid!() === 0;
  const run = (cmd: string, ...args: string[]) => assert.equal(spawnSync(cmd, args, { encoding: "utf8" }).status, 0, `${cmd} ${args.join(" ")}`);
  fs.mkdirSync(join(root, "etc/deep/er"), { recursive: true });
  fs.writeFileSync(join(root, "etc/deep/er/file"), "x".repeat(10_000));
  for (const name of ["Z", "-x", "é", "日本", "😀", "a b"]) fs.writeFileSync(join(root, name), name);
  fs.writeFileSync(join(root, "tagged"), "t");
  fs.linkSync(join(root, "tagged"), join(root, "etc/hardlink"));
  fs.symlinkSync("../tagged", join(root, "etc/link"));
  fs.mkdirSync(join(root, "opaque"));
  run("setfattr", "-n", "user.overlay.opaque", "-v", "y", join(root, "opaque"));
  run("setfattr", "-n", "user.overlay.origin", "-v", "0x00fb", join(root, "etc"));
  run("setfattr", "-n", "user.foo", "-v", "bar", join(root, "tagged"));
  run("setfattr", "-n", "user.empty", join(root, "tagged"));
  run("setfattr", "-n", "user.long", "-v", "0x" + "ab".repeat(3000), join(root, "etc/deep/er/file"));
  run("setfattr", "-n", "user.of-the-root", "-v", "r", root);
  // An access ACL (user::rw-, group::r--, other::r--) as its xattr.
  run("setfattr", "-n", "system.posix_acl_access", "-v", "0x0200000001000600ffffffff04000400ffffffff20000400ffffffff", join(root, "a b"));
  assert.equal(spawnSync("mkfifo", [join(root, "etc/fifo")]).status, 0);
  const server: Server = createServer();
  await new Promise<void>((up) => server.listen(join(root, "etc/socket"), up));
  if (isRoot) {
    // Whiteouts (0/0 devices): their tar names (".wh.a") sort apart from their names.
    run("mknod", join(root, "a"), "c", "0", "0");
    run("mknod", join(root, "etc/deep/gone"), "c", "0", "0");
    run("mknod", join(root, "etc/null"), "c", "1", "3");
    run("setcap", "cap_net_raw+ep", join(root, "Z"));
    run("setfattr", "-n", "trusted.x", "-v", "0x00ff", join(root, "-x"));
    run("setfattr", "-h", "-n", "trusted.on-a-link", "-v", "1", join(root, "etc/link"));
  } else console.log("# not root: no whiteouts, devices, capabilities or trusted.* xattrs in the tree");
  try {
    const native = scanTree(root, undefined, lister);
    const js = scanTree(root, undefined, null);
    assert.ok(native.xattrs, "every directory was scanned natively");
    assert.equal(js.xattrs, undefined, "the lstat walk reads no xattrs");
    const { xattrs, ...listing } = native;
    assert.deepEqual(listing, js);
    const dumped = await readTreeXattrs(root);
    assert.deepEqual(xattrs, dumped);
    assert.ok(dumped.size >= (isRoot ? 9 : 6), `${dumped.size} entries with xattrs`);
    if (isRoot) {
      assert.deepEqual([...native.whiteouts].sort(), ["a", "etc/deep/gone"]);
      assert.ok(native.entries.some((e) => e.tarName === ".wh.a"));
    }
    const names = native.entries.filter((e) => !e.path.includes("/")).map((e) => e.tarName);
    assert.deepEqual(names, [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))), "top-level tar names in byte order");
    const a = await digestLayer(root, { sourceDateEpoch: 0, scan: native, xattrs: native.xattrs });
    const b = await digestLayer(root, { sourceDateEpoch: 0, scan: js, xattrs: dumped });
    assert.deepEqual(a, b);
  } finally {
    server.close();
  }
});

test("scan: a directory with a name that is not UTF-8 is left to the lstat walk, and then getfattr reads the tree's xattrs", () => {
  const d = dir("scan-bytes");
  fs.mkdirSync(join(d, "sub"));
  fs.writeFileSync(Buffer.concat([Buffer.from(d + "/sub/"), Buffer.from([0x66, 0xff, 0x6f])]), "");
  assert.notEqual(lister.scan(d, true), undefined);
  assert.equal(lister.scan(join(d, "sub"), false), undefined);
  assert.equal(lister.scan(join(d, "gone"), false), undefined, "a missing directory is the walk's error to report");
});

test("the built mstage commits its stages' layers with the native scan: no getfattr walks them (it does with MSTAGE_LISTDIR=js), and the layers are the same", { timeout: 120_000 }, (t) => {
  if (!fs.existsSync(MSTAGE_BIN.replace(/bin\/mstage\.mjs$/, "dist/mstage.mjs"))) return t.skip("the CLI is not built: run `pnpm build`");
  if (process.getuid!() !== 0) return t.skip("not root: under strace, newuidmap runs without its setuid bit, so a user's build cannot map its ids");
  const up = (listdir: string) => {
    const project = copyFixture("plan-basic");
    const traces = fs.mkdtempSync(join(work, "trace-"));
    const env = { ...process.env, NO_COLOR: "1", MSTAGE_STORE: fs.mkdtempSync(join(work, "store-")), MSTAGE_LISTDIR: listdir };
    const r = spawnSync("strace", ["-f", "-qq", "-e", "trace=execve", "-o", join(traces, "t"), process.execPath, MSTAGE_BIN, "up", "-q"], { cwd: project, env, encoding: "utf8", timeout: 100_000 });
    assert.equal(r.status, 0, r.stderr);
    // A commit's getfattr dumps the whole upper dir ("."); a copy's, the entry it copies.
    const getfattr = fs.readFileSync(join(traces, "t"), "utf8").split("\n").filter((l) => /execve\("[^"]*getfattr", \[.*"--", "\."\]/.test(l)).length;
    const plan = spawnSync(process.execPath, [MSTAGE_BIN, "plan", "--json"], { cwd: project, env, encoding: "utf8" });
    assert.equal(plan.status, 0, plan.stderr);
    const layers = fs.readdirSync(join(env.MSTAGE_STORE, "layers")).sort();
    return { getfattr, layers, plan: JSON.parse(plan.stdout) as { stages: { status: string }[] } };
  };
  const native = up("");
  const js = up("js");
  assert.equal(native.getfattr, 0, "the native scan read the commits' xattrs");
  assert.ok(js.getfattr >= 2, `with MSTAGE_LISTDIR=js getfattr read them (${js.getfattr} times)`);
  assert.deepEqual(native.layers, js.layers, "the same layers, by diff id");
  assert.ok(native.plan.stages.every((s) => s.status !== "rebuild"));
});

test("digestScanning: the tar hashed while the tree is scanned is the tar hashed after the scan, and the times are clamped alike", async () => {
  const make = (name: string) => {
    const root = dir(name);
    // Big files across ring slots (4 MiB), many small ones across directories, xattrs, links.
    for (let d = 0; d < 30; d++) {
      fs.mkdirSync(join(root, `d${d}/sub`), { recursive: true });
      for (let f = 0; f < 40; f++) fs.writeFileSync(join(root, `d${d}`, `f${f}`), `${d}/${f}\n`.repeat(f * 50));
      fs.writeFileSync(join(root, `d${d}/sub/big`), Buffer.alloc((d % 4) * 3_000_000 + 1, d));
    }
    fs.symlinkSync("d1/f1", join(root, "link"));
    fs.linkSync(join(root, "d2/f2"), join(root, "d3/hard"));
    assert.equal(spawnSync("setfattr", ["-n", "user.k", "-v", "v", join(root, "d4/f4")]).status, 0);
    for (const p of [join(root, "d5"), join(root, "d5/f5")]) fs.utimesSync(p, 1_000_000_123, 1_000_000_456.789);
    return root;
  };
  const a = make("scanning-a");
  const b = make("scanning-b");
  let normalised = 0;
  const scanned = await digestScanning(a, { sourceDateEpoch: 1_500_000_000 }, async (scan) => {
    normalised = scan.entries.length;
  }, lister);
  assert.ok(normalised > 1200, "normalise saw the whole scan");
  // Without the native lister, nothing is written before the scan and normalising are done.
  const sequential = await digestScanning(b, { sourceDateEpoch: 1_500_000_000 }, async () => {}, null);
  assert.deepEqual(scanned, sequential);
  assert.ok(scanned.size > 40_000_000);
  const times = (root: string) => ["d5", "d5/f5", "d6/f6", "link"].map((p) => fs.lstatSync(join(root, p)).mtimeMs);
  assert.deepEqual(times(a), times(b));
  assert.equal(fs.lstatSync(join(a, "d5/f5")).mtimeMs, 1_000_000_456_000, "truncated to whole seconds, below the epoch");
  assert.equal(fs.lstatSync(join(a, "d6/f6")).mtimeMs, 1_500_000_000_000, "clamped to the epoch");
});
