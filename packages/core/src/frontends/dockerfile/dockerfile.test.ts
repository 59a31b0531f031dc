import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beginStageCollection } from "../../api/stage.ts";
import { UserError } from "../../errors.ts";
import type { Stage } from "../../model.ts";
import { diffInputs } from "../../reasons.ts";
import type { StageInputs } from "../../keys.ts";
import { dockerfile, type DockerfileOptions } from "./index.ts";
import { expandWord, expandWords } from "./words.ts";

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "mstage-df-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

function load(files: Record<string, string>, options: Partial<DockerfileOptions> = {}): { target: Stage; stages: Stage[]; files: string[]; dir: string } {
  const dir = project(files);
  const c = beginStageCollection({ projectDir: dir });
  try {
    const target = dockerfile("./Dockerfile", { name: "app", ...options });
    return { target, stages: c.end(), files: c.files(), dir };
  } finally {
    c.end();
  }
}

function chain(s: Stage): Stage[] {
  const out = [s];
  while (out[0]!.spec.from.kind === "stage") out.unshift((out[0]!.spec.from as { stage: Stage }).stage);
  return out;
}

const env = (o: Record<string, string>) => (k: string) => o[k];

test("words expand like Docker: defaults, alternatives, quotes and escapes", () => {
  const e = env({ A: "a", EMPTY: "" });
  assert.equal(expandWord("${A:-x}${B:-y}${EMPTY:-z}${EMPTY-w}", e), "ayz");
  assert.equal(expandWord("${A:+set}${B:+set}${EMPTY+unset-but-there}", e), "setunset-but-there");
  assert.equal(expandWord(`'$A' "$A" \\$A $`, e), "$A a $A $");
  assert.deepEqual(expandWords(`one "two words" '' $B three`, e), ["one", "two words", "", "three"]);
  assert.throws(() => expandWord("${B:?needs B}", e), /B: needs B/);
  assert.throws(() => expandWord("'open", e), /unterminated single quote/);
});

test("the seed's two-stage Dockerfile becomes a chain of steps and a stage on scratch copying from it", () => {
  const { target, stages } = load({
    Dockerfile: [
      "FROM golang:1.21 as build", // 1
      "WORKDIR /src",
      "COPY <<EOF /src/main.go",
      "package main",
      'import "fmt"',
      "func main() {",
      '  fmt.Println("hello, world")',
      "}",
      "EOF",
      "RUN go build -o /bin/hello ./main.go", // 10
      "FROM scratch",
      "COPY --from=build /bin/hello /bin/hello",
      'CMD ["/bin/hello"]',
      "",
    ].join("\n"),
  });
  assert.deepEqual(stages.map((s) => s.name), ["app.build.1", "app.build.2", "app.build.3", "app.1.1", "app"]);
  const [workdir, copyMain, build] = stages;
  assert.deepEqual(workdir!.spec.from, { kind: "image", ref: "golang:1.21" });
  assert.equal(workdir!.spec.workdir, "/src");
  const [dest, src] = copyMain!.spec.copy[0]!;
  assert.equal(dest, "/src/main.go");
  assert.equal(src.kind === "inline" && src.text, 'package main\nimport "fmt"\nfunc main() {\n  fmt.Println("hello, world")\n}\n');
  assert.deepEqual(build!.spec.run, ["go build -o /bin/hello ./main.go"]);
  assert.deepEqual(build!.spec.origin, { file: "Dockerfile", line: 10, instruction: "RUN", args: {} });
  assert.equal(build!.definedAt?.line, 10);
  const last = chain(target);
  assert.equal(last[0]!.spec.from.kind, "scratch");
  const copied = last[0]!.spec.copy[0]!;
  assert.equal(copied[0], "/bin/hello");
  assert.ok(copied[1].kind === "stage-path" && copied[1].stage === build && copied[1].path === "/bin/hello");
  assert.deepEqual(target.spec.cmd, ["/bin/hello"]);
  assert.equal(target.spec.run.length + target.spec.copy.length, 0);
});

test("ARG before FROM, build args, FROM a stage, exec-form RUN, ENV expansion, USER and ENTRYPOINT", () => {
  const { target, stages, files, dir } = load(
    {
      Dockerfile: [
        "ARG BASE=busybox",
        "ARG TAG",
        "FROM ${BASE}:${TAG:-stable} AS base",
        "ARG VERSION=1",
        "ENV APP=/opt/app V=${VERSION}",
        "WORKDIR $APP",
        "COPY --chown=1000 --chmod=0755 run.sh ./",
        "USER 1000:1000",
        'RUN ["/bin/sh", "-c", "echo hi"]',
        "RUN echo $VERSION",
        "FROM base",
        'ENTRYPOINT ["/run.sh"]',
        "EXPOSE 8080 53/udp",
        "",
      ].join("\n"),
      "run.sh": "#!/bin/sh\n",
    },
    { args: { VERSION: "2" } },
  );
  assert.ok(files.some((f) => f.endsWith("/Dockerfile")));
  const [workdir, copy, exec, shell] = stages;
  assert.deepEqual(workdir!.spec.from, { kind: "image", ref: "busybox:stable" });
  assert.deepEqual(workdir!.spec.env, { APP: "/opt/app", V: "2" });
  assert.equal(workdir!.spec.workdir, "/opt/app");
  const [dest, src] = copy!.spec.copy[0]!;
  assert.equal(dest, "/opt/app/");
  assert.deepEqual({ kind: src.kind, path: (src as { path: string }).path, mode: src.mode, owner: src.owner }, { kind: "local", path: "./run.sh", mode: 0o755, owner: "1000:1000" });
  assert.equal(exec!.spec.runAs, "1000:1000");
  assert.deepEqual([...exec!.spec.shell, ...exec!.spec.run], ["/usr/bin/env", "VERSION=2", "/bin/sh", "-c", "echo hi"]);
  assert.deepEqual(shell!.spec.run, ["export VERSION='2'\necho $VERSION"]);
  assert.deepEqual(shell!.spec.origin?.args, { VERSION: "2" });
  assert.equal(target.name, "app");
  assert.deepEqual(target.spec.entrypoint, ["/run.sh"]);
  assert.equal(target.spec.cmd, undefined);
  assert.deepEqual(target.spec.expose, ["8080/tcp", "53/udp"]);
  rmSync(dir, { recursive: true, force: true });
});

test(".dockerignore of the context applies to COPY sources", () => {
  const { stages } = load({
    Dockerfile: "FROM busybox\nCOPY . /src/\nCOPY sub /sub\n",
    ".dockerignore": "*.log\nsub/tmp\n!keep.log\n",
    "a.txt": "a",
    "sub/tmp": "t",
  });
  const ex = (s: Stage) => (s.spec.copy[0]![1] as unknown as { exclude: string[] }).exclude;
  assert.deepEqual(ex(stages[0]!), ["/*.log", "/sub/tmp", "!/keep.log"]);
  assert.deepEqual(ex(stages[1]!), ["/tmp"]);
});

function errorOf(dockerfileText: string, options: Partial<DockerfileOptions> = {}): UserError {
  try {
    load({ Dockerfile: dockerfileText }, options);
  } catch (e) {
    assert.ok(e instanceof UserError, String(e));
    return e;
  }
  assert.fail("expected an error");
}

test("an unknown instruction and a syntax error name Dockerfile:LINE and show the line", () => {
  const unknown = errorOf("FROM busybox\nRUN true\nFOOBAR x\n");
  assert.match(unknown.message, /Dockerfile:3: unknown instruction: FOOBAR/);
  assert.match(unknown.detail ?? "", /3 \| FOOBAR x/);
  const heredoc = errorOf("FROM busybox\nCOPY <<EOF /x\nno end\n");
  assert.match(heredoc.message, /Dockerfile:2: unterminated heredoc <<EOF/);
  assert.match(heredoc.detail ?? "", /2 \| COPY <<EOF \/x/);
  assert.match(errorOf("FROM busybox\nCOPY onlyone\n").message, /Dockerfile:2: COPY requires at least two arguments/);
  assert.match(errorOf("FROM busybox\nENV A=\"open\n").message, /Dockerfile:2: unterminated double quote/);
});

test("what mstage cannot build yet is refused at its line, never skipped", () => {
  assert.match(errorOf("FROM busybox\nRUN --mount=type=bind,target=/x,rw true\n").message, /Dockerfile:2: RUN --mount=type=bind: option "rw" is not supported yet/);
  assert.match(errorOf("FROM busybox\nHEALTHCHECK --bogus=1 CMD true\n").message, /Dockerfile:2: HEALTHCHECK --bogus is not a HEALTHCHECK flag/);
  assert.match(errorOf("FROM busybox\nENV PATH=/x:$PATH\n").message, /Dockerfile:2: \$PATH is not set by an ARG or ENV/);
  assert.match(errorOf("FROM busybox\n", { args: { NOPE: "1" } }).message, /args\.NOPE is not declared by any ARG/);
  assert.match(errorOf("FROM busybox\n", { target: "nope" }).message, /target "nope" is not a stage/);
});

test("plan names the Dockerfile line of a changed step and a changed build arg by its name", () => {
  const inputs = (run: string, args: Record<string, string>): StageInputs => ({
    format: 1,
    platform: "linux/amd64",
    base: { kind: "scratch" },
    copy: [],
    run: [run],
    shell: ["/bin/sh", "-c"],
    env: {},
    network: "host",
    binds: [],
    config: { expose: [], labels: {}, volumes: [], annotations: {}, squash: false, tags: [] },
    origin: { file: "Dockerfile", line: 7, instruction: "RUN", args },
    files: {},
  });
  assert.deepEqual(diffInputs(inputs("make", {}), inputs("make all", {})), ["Dockerfile:7 RUN changed"]);
  assert.deepEqual(diffInputs(inputs("export V='1'\nmake", { V: "1" }), inputs("export V='2'\nmake", { V: "2" })), ["ARG V changed"]);
});

test("HEALTHCHECK, ONBUILD, owner names and port ranges go to their stage keys", () => {
  const { target } = load({
    Dockerfile: 'FROM busybox\nCOPY --chown=app:staff f /f\nHEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost || exit 1\nONBUILD RUN make\nEXPOSE 8000-8001/udp\n',
    f: "f",
  });
  const copy = chain(target)[0]!;
  assert.equal(copy.spec.copy[0]![1].owner, "app:staff");
  assert.deepEqual(target.spec.healthcheck, { test: ["CMD-SHELL", "wget -q localhost || exit 1"], interval: 5_000_000_000, retries: 2 });
  assert.deepEqual(target.spec.onBuild, ["RUN make"]);
  assert.deepEqual(target.spec.expose, ["8000/udp", "8001/udp"]);
});

test("the predefined platform args have BuildKit's values, in FROM lines and in a stage only once declared by ARG", () => {
  const file = [
    "ARG TARGETARCH",
    "FROM --platform=$BUILDPLATFORM busybox AS build",
    "ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH",
    "RUN echo $TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT] $BUILDPLATFORM $BUILDOS $BUILDARCH",
    "FROM busybox:$TARGETARCH",
    "COPY --from=build /out /out",
    "RUN echo [$TARGETARCH]",
    "",
  ].join("\n");
  const { target } = load({ Dockerfile: file }, { platform: "linux/arm/v7" });
  const [copy, run] = chain(target).slice(-3, -1);
  const build = (copy!.spec.copy[0]![1] as { stage: Stage }).stage;
  assert.match(build.spec.run[0]!, /echo \$TARGETPLATFORM/);
  assert.match(build.spec.run[0]!, /^export .*TARGETPLATFORM='linux\/arm\/v7' TARGETOS='linux' TARGETARCH='arm' TARGETVARIANT='v7' BUILDPLATFORM='linux\/amd64' BUILDOS='linux' BUILDARCH='amd64'/);
  assert.equal(build.spec.platform, "linux/amd64", "FROM --platform=$BUILDPLATFORM pins the build stage to the build machine");
  assert.equal(copy!.spec.from.kind, "image");
  assert.equal((copy!.spec.from as { ref: string }).ref, "busybox:arm", "a meta ARG is visible in FROM");
  assert.equal(copy!.spec.platform, "linux/arm/v7", "a stage without FROM --platform is built for dockerfile()'s platform");
  assert.equal(run!.spec.platform, "linux/arm/v7");
  assert.equal(target.spec.platform, "linux/arm/v7", "so is the stage carrying the image config");
  assert.doesNotMatch(run!.spec.run[0]!, /export/, "TARGETARCH is not visible in a stage that does not declare it");
  // A declared default wins over the predefined value, as BuildKit's dispatchArg does; a build arg over both.
  const dflt = load({ Dockerfile: "FROM scratch AS x\nFROM busybox\nARG TARGETOS=plan9\nRUN echo $TARGETOS\n" });
  const lastRun = (s: Stage) => chain(s).reverse().find((x) => x.spec.run.length)!.spec.run[0]!;
  assert.match(lastRun(dflt.target), /TARGETOS='plan9'/);
  assert.equal(dflt.target.spec.platform, undefined, "without a platform option a stage follows whoever reads it");
  const given = load({ Dockerfile: "FROM busybox\nARG TARGETOS=plan9\nRUN echo $TARGETOS\n" }, { args: { TARGETOS: "linux" } });
  assert.match(lastRun(given.target), /TARGETOS='linux'/);
});

test("a stage built FROM another stage keeps that stage's FROM --platform; a bad platform names its line", () => {
  const { target } = load({ Dockerfile: "FROM --platform=linux/arm64 busybox AS a\nRUN true\nFROM a\nRUN true\n" }, { platform: "linux/amd64" });
  assert.equal(target.spec.platform, "linux/arm64");
  assert.match(errorOf("FROM --platform=linux busybox\n").message, /Dockerfile:1: FROM --platform=linux: not a platform/);
  assert.match(errorOf("FROM busybox\n", { platform: "amd64" }).message, /invalid platform "amd64"/);
});

test("COPY --parents keeps each source's path under the destination, below a /./ pivot, wildcards and ** matched in the context", () => {
  const { target } = load({
    Dockerfile: [
      "FROM busybox AS build",
      "FROM busybox",
      "COPY --parents a/b/f.txt x/./y/g.txt /dst/",
      "COPY --parents */*.go /go/",
      "COPY --parents src/**/*.h /inc",
      "COPY --parents a /whole/",
      "COPY --parents --from=build /opt/./lib/libz.so /usr/",
      "",
    ].join("\n"),
    "a/b/f.txt": "f",
    "x/y/g.txt": "g",
    "p/main.go": "m",
    "q/util.go": "u",
    "q/util.txt": "no",
    "src/z.h": "z",
    "src/deep/er/w.h": "w",
  });
  const copies = chain(target).flatMap((s) => s.spec.copy.map(([d, src]) => `${d} <- ${src.kind === "local" ? src.path : `${(src as { stage: Stage }).stage.name}:${(src as { path: string }).path}`}`));
  assert.deepEqual(copies, [
    "/dst/a/b/f.txt <- ./a/b/f.txt",
    "/dst/y/g.txt <- ./x/y/g.txt",
    "/go/p/main.go <- ./p/main.go",
    "/go/q/util.go <- ./q/util.go",
    "/inc/src/deep/er/w.h <- ./src/deep/er/w.h",
    "/inc/src/z.h <- ./src/z.h",
    "/whole/a/ <- ./a",
    "/usr/lib/libz.so <- app.build:/opt/lib/libz.so",
  ]);
  assert.match(errorOf("FROM busybox\nCOPY --parents nope/*.c /src/\n").message, /Dockerfile:2: COPY --parents nope\/\*\.c: no files match/);
  assert.match(errorOf("FROM busybox AS b\nFROM busybox\nCOPY --parents --from=b /x/*.c /src/\n").message, /Dockerfile:3: COPY --parents --from with wildcards/);
});

test("ADD of a URL is a download and ADD of a git remote a checkout, as BuildKit tells them apart", async () => {
  const { gitRemote } = await import("./translate.ts");
  assert.deepEqual(gitRemote("https://github.com/moby/buildkit.git#v0.12.5"), { url: "https://github.com/moby/buildkit.git", ref: "v0.12.5" });
  assert.deepEqual(gitRemote("git@github.com:me/r.git"), { url: "git@github.com:me/r.git" });
  assert.deepEqual(gitRemote("git://h/r#main:sub"), { url: "git://h/r", ref: "main", subdir: "sub" });
  assert.equal(gitRemote("https://example.com/tool.tar.gz"), undefined, "an http(s) path not ending in .git is a download");
  const sha = "sha256:" + "a".repeat(64);
  const { target } = load({
    Dockerfile: `FROM scratch\nADD --checksum=${sha} --chmod=755 https://example.com/tool /usr/bin/\nADD https://example.com/x.txt /x.txt\nADD --keep-git-dir https://example.com/r.git#v1 /src\n`,
  });
  const copies = chain(target).flatMap((s) => s.spec.copy.map(([dest, src]) => [dest, { ...src }]));
  assert.deepEqual(copies, [
    ["/usr/bin/", { kind: "http", url: "https://example.com/tool", sha256: sha, mode: 0o755 }],
    ["/x.txt", { kind: "http", url: "https://example.com/x.txt" }],
    ["/src/", { kind: "git", url: "https://example.com/r.git", ref: "v1", keepGitDir: true }],
  ]);
  for (const [line, message] of [
    ["COPY https://example.com/x /x", /COPY takes no URLs; ADD downloads them/],
    ["ADD --checksum=sha256:abc https://example.com/x /x", /give sha256:<64 hex digits>/],
    ["ADD https://example.com/r.git#main:sub /x", /a git subdirectory .* is not supported yet/],
    [`ADD --checksum=${sha} ./local /x`, /only an http\(s\) URL source takes a checksum/],
  ] as const) {
    assert.throws(() => load({ Dockerfile: `FROM scratch\n${line}\n`, local: "x" }), { message: new RegExp(`Dockerfile:2[\\s\\S]*${message.source}`) }, line);
  }
});
