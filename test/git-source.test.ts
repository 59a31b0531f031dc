// git(url, { ref }) (issue 10, item 9; BuildKit's git ADD): a real repository served by `git
// daemon` on loopback and read through file://, refs as branch, annotated tag and full commit, each
// resolved once and pinned in images.lock; a moved branch shows only after --refresh.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, chmodSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { imageEntries } from "./helpers/image-entries.ts";
import { expectOk, mstageAs, testUsers, tool, userDir, writeAs } from "./up-harness.ts";

const ID = ["-c", "user.name=t", "-c", "user.email=t@example.com"];

function git(dir: string, ...args: string[]): string {
  return execFileSync("git", [...ID, "-C", dir, ...args], { encoding: "utf8", env: { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null" } }).trim();
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

test("git() checks out a branch, a tag and a commit, pinned in images.lock until --refresh", { skip: !tool("git") && "git is not installed", timeout: 3 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const project = userDir(user, "git-src");
  const store = userDir(user, "git-src-store");
  const repos = userDir(user, "git-src-repos");
  t.after(() => {
    for (const d of [project, store, repos]) rmSync(d, { recursive: true, force: true });
  });

  // work: a clone whose pushes move the bare repo the daemon serves.
  const bare = join(repos, "repo.git");
  const work = join(repos, "work");
  execFileSync("git", ["init", "-q", "--bare", "-b", "main", bare]);
  execFileSync("git", ["init", "-q", "-b", "main", work]);
  mkdirSync(join(work, "bin"));
  writeFileSync(join(work, "README"), "first\n");
  writeFileSync(join(work, "bin", "run.sh"), "#!/bin/sh\necho run\n");
  chmodSync(join(work, "bin", "run.sh"), 0o700);
  symlinkSync("README", join(work, "link"));
  git(work, "add", "-A");
  git(work, "commit", "-q", "-m", "first");
  const first = git(work, "rev-parse", "HEAD");
  git(work, "tag", "-a", "v1", "-m", "v1");
  writeFileSync(join(work, "NEW"), "second\n");
  git(work, "add", "-A");
  git(work, "commit", "-q", "-m", "second");
  const second = git(work, "rev-parse", "HEAD");
  git(work, "push", "-q", bare, "main", "v1");

  const port = await freePort();
  const daemon = spawn("git", ["daemon", "--verbose", "--export-all", "--reuseaddr", "--listen=127.0.0.1", `--port=${port}`, `--base-path=${repos}`, repos], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  t.after(() => daemon.kill());
  await new Promise<void>((ready, fail) => {
    let log = "";
    daemon.stderr!.setEncoding("utf8").on("data", (d: string) => {
      log += d;
      if (log.includes("Ready to rumble")) ready();
    });
    daemon.once("exit", (code) => fail(new Error(`git daemon exited ${code}: ${log}`)));
  });

  const served = `git://127.0.0.1:${port}/repo.git`;
  const file = `file://${bare}`;
  const imagesTs = (ref: string) => `import { git, scratch, stage } from "mstage";
export const g = stage("g", {
  from: scratch(),
  copy: {
    "/src/": git("${served}", { ref: "${ref}" }),
    "/tag/": git("${file}", { ref: "v1" }),
    "/commit/": git("${served}", { ref: "${first}", owner: "1000:1000" }),
    "/kept/": git("${file}", { ref: "v1", keepGitDir: true }),
  },
});
`;
  writeAs(user, join(project, "images.ts"), imagesTs("main"));
  const mstage = mstageAs(user, project, store);
  expectOk(await mstage(["up", "-q"]), "up");
  const lock = JSON.parse(readFileSync(join(project, "images.lock"), "utf8"));
  assert.deepEqual(lock.git, { [`${served}#main`]: second, [`${file}#v1`]: first }, "branch and tag pinned; a full commit needs no pin");

  let img = imageEntries(join(project, "oci"), "g");
  const at = (p: string) => {
    const e = img.get(p);
    return e && [e.type, e.mode.toString(8), `${e.uid}:${e.gid}`];
  };
  assert.deepEqual(at("src/README"), ["file", "644", "0:0"]);
  assert.deepEqual(at("src/bin/run.sh"), ["file", "755", "0:0"], "git's executable bit, whatever mode the working file had");
  assert.deepEqual([img.get("src/link")?.type, img.get("src/link")?.content], ["symlink", "-> README"]);
  assert.ok(img.has("src/NEW"), "main is the second commit");
  assert.ok(!img.has("tag/NEW") && img.has("tag/README"), "v1 (an annotated tag) is the first commit");
  assert.deepEqual(at("commit/README"), ["file", "644", "1000:1000"], "a full commit id, with owner");
  assert.ok(!img.has("commit/NEW"));
  assert.ok(![...img.keys()].some((p) => p.startsWith("src/.git")), "no .git unless keepGitDir");
  assert.ok(img.has("kept/.git/HEAD"), "keepGitDir keeps .git");

  await t.test("a moved branch changes nothing until --refresh, then plan names the new commit", async () => {
    writeFileSync(join(work, "README"), "third\n");
    git(work, "commit", "-q", "-am", "third");
    const third = git(work, "rev-parse", "HEAD");
    git(work, "push", "-q", bare, "main");
    const cached = JSON.parse(expectOk(await mstage(["plan", "--json"]), "plan").stdout);
    assert.equal(cached.stages[0].status, "cached", "images.lock pins main");
    const refreshed = JSON.parse(expectOk(await mstage(["plan", "--json", "--refresh"]), "plan --refresh").stdout);
    assert.equal(refreshed.stages[0].status, "rebuild");
    assert.deepEqual(refreshed.stages[0].reasons, [`git ${served}#main now ${third.slice(0, 12)}`]);
    expectOk(await mstage(["up", "-q", "--refresh"]), "up --refresh");
    assert.equal(JSON.parse(readFileSync(join(project, "images.lock"), "utf8")).git[`${served}#main`], third);
    img = imageEntries(join(project, "oci"), "g");
    const readme = img.get("src/README")?.content;
    assert.equal(readme, "sha256:" + execFileSync("sha256sum", { input: "third\n", encoding: "utf8" }).split(" ")[0]);
  });

  await t.test("an unknown ref is an error naming the stage, the key and the refs there are", async () => {
    writeAs(user, join(project, "images.ts"), imagesTs("nope"));
    const r = await mstage(["plan"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /stage "g", key "copy\["\/src\/"\]": git git:\/\/127\.0\.0\.1:\d+\/repo\.git has no branch or tag "nope" \(it has: main, v1\)/);
    assert.doesNotMatch(r.stderr, /internal error/);
  });

  await t.test("--offline takes only what images.lock pins", async () => {
    writeAs(user, join(project, "images.ts"), imagesTs("v1"));
    const r = await mstage(["up", "-q", "--offline"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /key "copy\["\/src\/"\]": git git:\/\/\S+#v1 is not pinned in images\.lock and --offline resolves nothing/);
  });

  await t.test("dockerfile(): ADD of a git remote with #ref checks it out as git() does", async () => {
    writeAs(user, join(project, "Dockerfile"), `FROM scratch\nADD ${served}#v1 /tag\nADD --keep-git-dir=true --chown=7:7 ${served} /head/\n`);
    writeAs(user, join(project, "images.ts"), `import { dockerfile } from "mstage";\nexport const d = dockerfile("./Dockerfile", { name: "d" });\n`);
    expectOk(await mstage(["up", "-q"]), "up");
    const d = imageEntries(join(project, "oci"), "d");
    assert.ok(d.has("tag/README") && !d.has("tag/NEW") && !d.has("tag/.git"), "#v1, without .git");
    assert.deepEqual([d.get("head/NEW")?.uid, d.has("head/.git/HEAD")], [7, true], "the default branch, --chown, --keep-git-dir");
    assert.equal(JSON.parse(readFileSync(join(project, "images.lock"), "utf8")).git[`${served}#HEAD`], git(work, "rev-parse", "HEAD"));
  });
});
