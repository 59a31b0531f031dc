import { test } from "node:test";
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import { STAGE_BRAND, isStage } from "../model.ts";
import { StageError } from "../errors.ts";
import { debian, image, scratch } from "./bases.ts";
import { inline, local } from "./sources.ts";
import { beginStageCollection, stage } from "./stage.ts";

test("stage() fills defaults and normalises paths, ports and binds", () => {
  const s = stage("norm", {
    from: image("alpine:3.20"),
    copy: { "/etc//motd": inline("hi"), "/opt//bin/": local("./tool") },
    expose: [8080, "53/udp"],
    binds: { "/src": "./src", "/out": { host: "./out", readonly: false } },
    workdir: "/app/",
  });
  assert.deepEqual(s.spec.shell, ["/bin/sh", "-c"]);
  assert.equal(s.spec.network, "host");
  // A trailing "/" stays: it says the destination is a directory.
  assert.deepEqual(s.spec.copy.map(([d]) => d), ["/etc/motd", "/opt/bin/"]);
  assert.deepEqual(s.spec.expose, ["8080/tcp", "53/udp"]);
  assert.deepEqual(s.spec.binds, [
    { target: "/src", host: "./src", readonly: true },
    { target: "/out", host: "./out", readonly: false },
  ]);
  assert.equal(s.spec.workdir, "/app");
  assert.ok(Object.isFrozen(s.spec));
});

test("a stage is recognised by its brand, not by instanceof", () => {
  const s = stage("brand", { from: scratch() });
  assert.equal(isStage(s), true);
  assert.equal(isStage({ [STAGE_BRAND]: true }), true);
  assert.equal(isStage({ name: "x", spec: {} }), false);
  assert.equal(JSON.stringify({ s }), '{"s":{"stage":"brand"}}');
});

test("errors are StageErrors carrying stage, key and the caller's line", () => {
  const line = readFileSync(new URL(import.meta.url), "utf8").split("\n").findIndex((l) => l.endsWith("// the call")) + 1;
  try {
    stage("located", { from: scratch(), workdir: "relative" }); // the call
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof StageError);
    assert.equal(e.stage, "located");
    assert.equal(e.key, "workdir");
    assert.equal(e.location?.line, line);
    assert.match(e.location!.file, /stage\.test\.ts$/);
    assert.match(e.message, /stage "located", key "workdir": "relative" is not absolute/);
  }
});

test("duplicate names are an error only within one collection", () => {
  stage("twice", { from: scratch() });
  stage("twice", { from: scratch() });
  const c = beginStageCollection();
  try {
    stage("dup", { from: scratch() });
    assert.throws(() => stage("dup", { from: scratch() }), /a stage named "dup" is already defined at stage\.test\.ts:\d+; stage names must be unique/);
  } finally {
    assert.deepEqual(c.end().map((s) => s.name), ["dup"]);
  }
});

test("the base and source helpers validate their own arguments", () => {
  assert.throws(() => debian({ suite: "Bookworm" }), /debian\(\): "suite" must be a release name like "bookworm"/);
  assert.deepEqual(debian({ suite: "bookworm", packages: ["curl", "ca-certificates", "curl"] }).packages, ["ca-certificates", "curl"]);
  assert.throws(() => image("alpine", { platfrom: "linux/amd64" } as never), /image\(\): unknown option "platfrom"/);
  assert.equal(local("./x", { owner: "app:staff" }).owner, "app:staff");
  assert.throws(() => local("./x", { owner: "a b" }), /local\(\): "owner" must be "user", "user:group", "uid" or "uid:gid"/);
  assert.throws(() => stage("x1", { from: scratch(), secrets: { tok: { value: "s" } as never } }), /key "secrets": secret "tok" must be \{ env: "NAME" \} or \{ file: "path" \}/);
  assert.throws(() => stage("x2", { from: scratch(), network: "bridge" as never }), /key "network": must be "host" or "none"/);
  assert.throws(() => stage("x3", { from: scratch(), tags: ["Bad Tag"] }), /key "tags": "Bad Tag" is not an image reference/);
});

test("cmd and entrypoint strings are shell form in the stage's shell; expose ranges are one port each", () => {
  const s = stage("shell-form", {
    from: image("alpine:3.20"),
    shell: ["/bin/ash", "-eo", "pipefail", "-c"],
    cmd: "echo $HOME",
    entrypoint: "exec /app",
    expose: ["8000-8002/tcp", 8001, "53/udp"],
  });
  assert.deepEqual(s.spec.cmd, ["/bin/ash", "-eo", "pipefail", "-c", "echo $HOME"]);
  assert.deepEqual(s.spec.entrypoint, ["/bin/ash", "-eo", "pipefail", "-c", "exec /app"]);
  assert.deepEqual(s.spec.expose, ["8000/tcp", "8001/tcp", "8002/tcp", "53/udp"]);
  assert.throws(() => stage("bad-range", { from: scratch(), expose: ["9000-8000"] }), { name: "StageError", message: /not a port like 8080, "53\/udp" or a range/ });
});

test("healthcheck is Docker's HEALTHCHECK: shell or exec test, Go durations in ns, retries, or none", () => {
  const s = stage("hc", { from: scratch(), healthcheck: { test: "wget -q localhost || exit 1", interval: "1m30s", timeout: "500ms", startPeriod: "1s", retries: 4 } });
  assert.deepEqual(s.spec.healthcheck, { test: ["CMD-SHELL", "wget -q localhost || exit 1"], interval: 90e9, timeout: 5e8, startPeriod: 1e9, retries: 4 });
  assert.deepEqual(stage("hc2", { from: scratch(), healthcheck: { test: ["/bin/check", "-q"] } }).spec.healthcheck, { test: ["CMD", "/bin/check", "-q"] });
  assert.deepEqual(stage("hc3", { from: scratch(), healthcheck: "none" }).spec.healthcheck, { test: ["NONE"] });
  assert.throws(() => stage("hc4", { from: scratch(), healthcheck: { test: "x", interval: "30" } }), { name: "StageError", message: /interval must be a duration like "30s"/ });
  assert.throws(() => stage("hc5", { from: scratch(), healthcheck: { test: "x", interva: "30s" } as never }), { message: /unknown option "interva"/ });
  assert.throws(() => stage("ob", { from: scratch(), onBuild: ["ONBUILD RUN x"] }), { name: "StageError", message: /cannot be a trigger/ });
  assert.deepEqual(stage("ob2", { from: scratch(), onBuild: ["RUN make"] }).spec.onBuild, ["RUN make"]);
});

test("binds take another stage's path (a dependency) and tmpfs takes absolute paths", () => {
  const deps = stage("deps", { from: scratch() });
  const s = stage("binder", { from: scratch(), shell: ["/bin/sh", "-c"], run: "true", binds: { "/src": "./src", "/deps/": deps.path("/out") }, tmpfs: ["/tmp/"] });
  assert.deepEqual(s.spec.binds.map((b) => b.target), ["/src"]);
  assert.deepEqual(s.spec.stageBinds.map((b) => [b.target, b.from.stage.name, b.from.path]), [["/deps", "deps", "/out"]]);
  assert.deepEqual(s.spec.tmpfs, ["/tmp"]);
  assert.throws(() => stage("bad-tmpfs", { from: scratch(), tmpfs: ["tmp"] }), { name: "StageError", message: /"tmp" is not absolute/ });
  assert.throws(() => stage("bad-bind", { from: scratch(), binds: { "/x": inline("no") as never } }), { name: "StageError", message: /must be a host path, \{ host, readonly\? \} or someStage\.path/ });
});

test("labelsFrom takes another stage's directory, which becomes a dependency", () => {
  const stamp = stage("stamp", { from: scratch() });
  const s = stage("labelled", { from: scratch(), labelsFrom: stamp.path("/labels/") });
  assert.equal(s.spec.labelsFrom?.stage, stamp);
  assert.equal(s.spec.labelsFrom?.path, "/labels");
  assert.throws(() => stage("bad-labels", { from: scratch(), labelsFrom: "./labels" as never }), { name: "StageError", message: /key "labelsFrom": must be a directory of another stage, like someStage\.path/ });
});

test("http() takes a sha256 (or none: pinned by up --allow-unpinned) and an http(s) URL; archive() takes a local or stage source", async () => {
  const { http, archive } = await import("./sources.ts");
  assert.equal(http("https://example.com/a.tgz", { sha256: "a".repeat(64) }).sha256, `sha256:${"a".repeat(64)}`);
  assert.equal(http("https://example.com/a.tgz").sha256, undefined);
  assert.throws(() => http("ftp://example.com/a", { sha256: "a".repeat(64) }), /must be http:\/\/ or https:\/\//);
  assert.throws(() => http("https://example.com/a", { sha256: "abc" }), /"sha256" must be 64 hex digits/);
  assert.equal(archive(local("./x.tar.gz")).source.kind, "local");
  assert.throws(() => archive(inline("x") as never), /archive\(\): the source must be local/);
  assert.throws(() => archive(local("./x.tar", { mode: 0o644 })), /keep their own owners and modes/);
});

test("git() takes a URL git clones from and a ref that is a branch, a tag or a commit", async () => {
  const { git } = await import("./sources.ts");
  assert.deepEqual({ ...git("https://example.com/r.git") }, { kind: "git", url: "https://example.com/r.git", ref: "HEAD", keepGitDir: false });
  assert.equal(git("git@github.com:me/r.git", { ref: "v1.2", keepGitDir: true, owner: "app" }).keepGitDir, true);
  assert.throws(() => git("-uupload-pack=touch /x"), /git\(\): the URL must be/);
  assert.throws(() => git("ext::sh -c touch% /x"), /git\(\): the URL must be/);
  for (const ref of ["--upload-pack=x", "a..b", "a b", "x.lock", "main/", ""]) assert.throws(() => git("https://e.com/r.git", { ref }), /"ref" must be a branch/, ref);
  assert.throws(() => git("https://e.com/r.git", { depth: 1 } as never), /unknown option "depth"/);
});

test("image().path() binds or copies an image's files through one build-only stage per image", () => {
  const c = beginStageCollection();
  try {
    const s = stage("uses-image", {
      from: scratch(),
      binds: { "/go": image("docker.io/library/golang:1.22").path("/usr/local/go") },
      copy: { "/certs/": image("docker.io/library/golang:1.22").path("/etc/ssl/certs"), "/arm": image("docker.io/library/golang:1.22", { platform: "linux/arm64" }).path("/x") },
    });
    const [bind] = s.spec.stageBinds;
    assert.equal(bind!.from.stage.name, "base.docker-io-library-golang-1-22");
    assert.equal((s.spec.copy[0]![1] as { stage: unknown }).stage, bind!.from.stage, "the same image is one stage");
    assert.equal((s.spec.copy[1]![1] as { stage: { name: string } }).stage.name, "base.docker-io-library-golang-1-22-linux-arm64");
    assert.deepEqual(bind!.from.stage.spec.from, { kind: "image", ref: "docker.io/library/golang:1.22" });
    assert.deepEqual(Object.keys(image("alpine")), ["kind", "ref"], "path() is not part of the base's data");
  } finally {
    c.end();
  }
});
