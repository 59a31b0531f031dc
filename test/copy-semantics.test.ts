// Copy, workdir and user semantics as BuildKit's Dockerfile frontend defines them (issue 10, items
// 1-7), checked on mstage's own images read back from the OCI layout, as every test user. The same
// images are compared with buildah's in copy-buildah.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeFeatureBase } from "./helpers/buildah.ts";
import { scenarioImagesTs, writeContext } from "./helpers/copy-scenarios.ts";
import { entryLines, imageEntries, type ImageEntry } from "./helpers/image-entries.ts";
import { expectOk, mstageAs, testUsers, tool, userDir, writeAs } from "./up-harness.ts";

const CAP = "security.capability=0100000200200000000000000000000000000000";

/** The entry lines of `paths` (and nothing else) in an image. */
function lines(entries: Map<string, ImageEntry>, ...paths: string[]): string[] {
  return entryLines(entries, (p) => !paths.includes("/" + p));
}

// makeFeatureBase needs root (setcap, chown); the builds run as every test user.
const why = process.getuid?.() !== 0 ? "the feature base is made as root (setcap, chown)" : ["umoci", "setcap", "setfattr"].find((t) => !tool(t)) && "umoci, setcap or setfattr is missing: run .ci/setup";
const baseDir = why ? "" : join(tmpdir(), `mstage-copy-base-${process.pid}`);
if (!why) {
  mkdirSync(baseDir, { mode: 0o755 });
  makeFeatureBase(join(baseDir, "layout"));
  execFileSync("chmod", ["-R", "a+rX", baseDir]);
  process.on("exit", () => rmSync(baseDir, { recursive: true, force: true }));
}

for (const user of testUsers()) {
  test(`copy, workdir and user semantics as ${user.name}`, { timeout: 5 * 60_000 }, async (t) => {
    const skip = user.skip ?? why;
    if (skip) return t.skip(skip);
    const project = userDir(user.name, "copy-sem");
    const store = userDir(user.name, "copy-sem-store");
    t.after(() => {
      rmSync(project, { recursive: true, force: true });
      rmSync(store, { recursive: true, force: true });
    });
    writeContext(project);
    writeAs(user.name, join(project, "images.ts"), scenarioImagesTs(join(baseDir, "layout")));
    if (user.name !== "root") execFileSync("chown", ["-R", `${user.name}:${user.name}`, project]);
    const mstage = mstageAs(user.name, project, store);
    expectOk(await mstage(["up", "-q"]), "mstage up");
    const layout = join(project, "oci");
    const fromStage = imageEntries(layout, "from-stage");
    const local = imageEntries(layout, "local");
    const workdir = imageEntries(layout, "workdir-user");
    const extras = imageEntries(layout, "extras");
    const basePaths = imageEntries(layout, "base-paths");

    await t.test("1: a destination ending in / is a directory, created with its parents; a dangling symlink is followed inside the root", () => {
      assert.deepEqual(lines(local, "/newdir", "/newdir/deep", "/newdir/deep/f"), [
        "/newdir dir 0755 0:0 ",
        "/newdir/deep dir 0755 0:0 ",
        "/newdir/deep/f file 0640 0:0 sha256:092fcfbbcfca3b5be7ae1b5e58538e92c35ab273ae13664fed0d67484c8e78a6",
      ]);
      assert.match(lines(fromStage, "/single/tool")[0]!, /^\/single\/tool file 4755 1000:1000 /);
      assert.deepEqual(lines(fromStage, "/into", "/made/here", "/made/here/plain.txt").map((l) => l.split(" sha256")[0]), [
        "/into symlink 0777 0:0 -> /made/here",
        "/made/here dir 0755 0:0 ",
        "/made/here/plain.txt file 0640 1000:1000",
      ]);
      assert.match(lines(extras, "/made/here")[0]!, /^\/made\/here file 0640 0:0 sha256:092fcf/, "without the slash the link's target becomes the file");
      assert.match(lines(extras, "/as-file")[0]!, /^\/as-file file 0640 0:0 /);
    });

    await t.test("2: path() keeps owner, setuid, sticky, xattrs (a file capability), symlinks and hardlinks", () => {
      assert.deepEqual(lines(fromStage, "/keep", "/keep/sticky", "/keep/tool", "/keep/sub/tool-link", "/keep/sub/rel-link").map((l) => l.replace(/ sha256:\w+/, "")), [
        "/keep dir 0755 0:0 ",
        "/keep/sticky dir 1777 1000:1000 ",
        "/keep/sub/rel-link symlink 0777 1000:1000 -> ../tool",
        `/keep/sub/tool-link file 4755 1000:1000 xattrs:${CAP},user.origin=62617365 links=keep/sub/tool-link,keep/tool`,
        `/keep/tool file 4755 1000:1000 xattrs:${CAP},user.origin=62617365 links=keep/sub/tool-link,keep/tool`,
      ]);
      assert.match(lines(fromStage, "/chowned/tool")[0]!, new RegExp(`^/chowned/tool file 4755 1000:2000 \\S+ xattrs:${CAP},`), "owner overrides the owner only; the capability survives the chown");
    });

    await t.test("3: copying into an existing directory leaves its owner and mode alone", () => {
      assert.deepEqual(lines(fromStage, "/opt/existing"), ["/opt/existing dir 0750 1000:2000 "]);
      assert.deepEqual(lines(local, "/opt/existing", "/opt/existing/sub"), ["/opt/existing dir 0750 1000:2000 ", "/opt/existing/sub dir 0700 0:0 "]);
    });

    await t.test("4: hardlinks in a local() directory stay hardlinks", () => {
      assert.deepEqual(lines(local, "/ldir/g", "/ldir/sub/g2").map((l) => l.replace(/ sha256:\w+/, "")), [
        "/ldir/g file 0644 0:0 links=ldir/g,ldir/sub/g2",
        "/ldir/sub/g2 file 0644 0:0 links=ldir/g,ldir/sub/g2",
      ]);
    });

    await t.test("5: workdir is created without a run, and owned by the user the stage runs as", () => {
      assert.deepEqual(lines(workdir, "/wd/a", "/wd/app", "/wd/app/b", "/wd2"), [
        "/wd/a dir 0755 0:0 ",
        "/wd/app dir 0755 1000:1000 ",
        "/wd/app/b dir 0755 1000:1000 ",
        "/wd2 dir 0755 1000:0 ",
      ]);
    });

    await t.test("6: user \"app\" gets its groups from /etc/group; \"app:root\" gets exactly root", () => {
      const sha = (s: string) => "sha256:" + createHash("sha256").update(s).digest("hex");
      assert.match(lines(workdir, "/wd/app/b/groups-app")[0]!, new RegExp(`1000:1000 ${sha("1000 2000\n")}$`));
      assert.match(lines(workdir, "/wd2/ids")[0]!, new RegExp(`1000:0 ${sha("1000\n0\n")}$`));
    });

    await t.test("8: wildcards copy each match as Docker does, include keeps only what matches", () => {
      assert.deepEqual(entryLines(local, (p) => !p.startsWith("globbed")).map((l) => l.replace(/ sha256:\w+/, "")), [
        "/globbed dir 0755 0:0 ",
        "/globbed/deep dir 0755 0:0 ",
        "/globbed/deep/x file 0644 0:0",
        "/globbed/lfile file 0644 0:0",
      ], "sub/ldir's contents and sub/lfile, not sub/other");
      assert.match(lines(local, "/one-glob")[0]!, /^\/one-glob file 0644 0:0 /, "a single match is copied as if it were named");
      assert.deepEqual(entryLines(extras, (p) => !p.startsWith("inc") || p.startsWith("inc2")).map((l) => l.split(" ").slice(0, 2).join(" ")), ["/inc dir", "/inc/run.sh file", "/inc/sub dir", "/inc/sub/g2 file"]);
      assert.deepEqual(entryLines(extras, (p) => !p.startsWith("inc2")).map((l) => l.split(" ").slice(0, 2).join(" ")), ["/inc2 dir", "/inc2/ldir dir", "/inc2/ldir/deep dir", "/inc2/lfile file"], "anchored as BuildKit's include patterns, ! excluding again");
    });

    await t.test("10: an image's path is bound into run and copied without a stage written for it", () => {
      assert.equal(basePaths.get("bound-passwd")?.content, basePaths.get("etc/passwd")?.content, "binds: oci(…).path(\"/etc\")");
      assert.equal(basePaths.get("copied/group")?.content, basePaths.get("etc/group")?.content, "copy: oci(…).path(\"/etc/group\")");
      assert.ok(![...basePaths.keys()].some((p) => p.startsWith("mnt/etc/")), "the bind is not in the layer");
    });

    await t.test("9: archive() extracts a tar (gz, xz, bz2, zst, plain) with its owners, modes, symlinks and hardlinks", () => {
      const want = (dir: string) => [
        `/${dir}/pkg dir 0755 1000:2000 `,
        `/${dir}/pkg/bin dir 0755 1000:2000 `,
        `/${dir}/pkg/bin/tool file 4755 1000:2000 links=${dir}/pkg/bin/tool,${dir}/pkg/bin/tool2`,
        `/${dir}/pkg/bin/tool2 file 4755 1000:2000 links=${dir}/pkg/bin/tool,${dir}/pkg/bin/tool2`,
        `/${dir}/pkg/link symlink 0777 1000:2000 -> bin/tool`,
      ];
      const got = (img: Map<string, ImageEntry>, dir: string) => entryLines(img, (p) => !p.startsWith(dir + "/")).map((l) => l.replace(/ sha256:\w+/, ""));
      for (const d of ["gz", "xz", "bz2", "plain"]) assert.deepEqual(got(local, `unpacked/${d}`), want(`unpacked/${d}`));
      assert.deepEqual(got(extras, "unpacked/zst"), want("unpacked/zst"));
    });

    await t.test("7: owner names resolve in the destination's /etc/passwd and /etc/group; an unknown one names the stage and key", async () => {
      assert.deepEqual(lines(local, "/ldir-app", "/owned-f").map((l) => l.replace(/ sha256:\w+/, "")), ["/ldir-app dir 0755 1000:1000 ", "/owned-f file 0640 1000:2000"]);
      assert.match(lines(extras, "/etc/motd")[0]!, /^\/etc\/motd file 0600 1000:2000 /);
      writeAs(user.name, join(project, "images.ts"), `import { inline, oci, stage } from "mstage";
export const ghost = stage("ghost", { from: oci(${JSON.stringify(join(baseDir, "layout"))}, "base"), copy: { "/x": inline("x", { owner: "ghost:extra" }) } });
`);
      const r = await mstage(["up", "-q"]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /stage "ghost".*copy\["\/x"\]|copy\["\/x"\].*stage "ghost"/s);
      assert.match(r.stderr, /user "ghost" is not in the destination's \/etc\/passwd/);
      writeAs(user.name, join(project, "images.ts"), `import { local, oci, stage } from "mstage";
export const none = stage("none", { from: oci(${JSON.stringify(join(baseDir, "layout"))}, "base"), copy: { "/x/": local("./sub/zz*") } });
`);
      const g = await mstage(["up", "-q"]);
      assert.equal(g.code, 1, g.stderr);
      assert.match(g.stderr, /sub\/zz\*: no files match/, "a wildcard that matches nothing is an error, as in Docker (item 8)");
    });
  });
}
