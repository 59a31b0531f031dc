import { test } from "node:test";
import { createHash } from "node:crypto";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beginStageCollection } from "../../api/stage.ts";
import { UserError } from "../../errors.ts";
import type { Stage } from "../../model.ts";
import { stacker, type StackerOptions } from "./index.ts";

function load(files: Record<string, string>, options: StackerOptions = {}): { out: Record<string, Stage>; stages: Stage[]; files: string[]; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "mstage-stacker-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const c = beginStageCollection({ projectDir: dir });
  try {
    const out = stacker("./stacker.yaml", options);
    return { out, stages: c.end(), files: c.files(), dir };
  } finally {
    c.end();
  }
}

const YAML = `
config:
  prerequisites:
    - ./base.yaml
build:
  from:
    type: built
    tag: base
  import:
    - ./src/main.go
    - path: ./conf.ini
      dest: /etc/app/
      mode: 0600
      uid: 1000
      gid: 1000
  build_only: true
  run:
    - make \${{FLAGS:-O2}}
    - cp app /app
app:
  from:
    type: docker
    url: docker://zothub.io/tools/busybox:\${{TAG}}
  import:
    - stacker://build/app
  run: cp /stacker/app /usr/bin/app
  environment:
    MODE: prod
  labels:
    a: b
  annotations:
    org.opencontainers.image.version: "1.0"
  full_command: /usr/bin/app --serve
  volumes: [/data]
  working_dir: /srv
  runtime_user: app
rootfs:
  from:
    type: tar
    url: stacker://build/rootfs.tar
`;

test("stacker keys become stage keys: imports under /stacker for run only, dest imports in the layer, config fields", () => {
  const { out, stages, files } = load(
    { "stacker.yaml": YAML, "base.yaml": "base:\n  from:\n    type: scratch\n", "src/main.go": "package main\n", "conf.ini": "x=1\n" },
    { substitutions: { TAG: "stable" } },
  );
  assert.deepEqual(Object.keys(out).sort(), ["app", "rootfs"]);
  assert.equal(files.length, 2);
  const build = stages.find((s) => s.name === "build")!;
  assert.equal(build.spec.from.kind, "stage");
  assert.deepEqual(build.spec.copy.map(([d, s]) => [d, s.kind, s.mode, s.owner]), [
    ["/stacker/main.go", "local", undefined, undefined],
    ["/etc/app/", "local", 0o600, "1000:1000"],
  ]);
  assert.deepEqual(build.spec.run, ["export STACKER_LAYER_NAME='build'\nmake -O2\ncp app /app", "rm -rf /stacker"]);
  assert.deepEqual(build.spec.shell, ["/bin/sh", "-x", "-e", "-c"]);
  const app = out.app!;
  assert.deepEqual(app.spec.from, { kind: "image", ref: "zothub.io/tools/busybox:stable" });
  const [dest, src] = app.spec.copy[0]!;
  assert.ok(dest === "/stacker/app" && src.kind === "stage-path" && src.stage === build && src.path === "/app");
  assert.deepEqual(app.spec.env, { MODE: "prod" });
  assert.deepEqual(app.spec.entrypoint, ["/usr/bin/app", "--serve"]);
  assert.deepEqual(app.spec.cmd, []);
  assert.deepEqual([app.spec.workdir, app.spec.user, app.spec.volumes, app.spec.labels, app.spec.annotations], ["/srv", "app", ["/data"], { a: "b" }, { "org.opencontainers.image.version": "1.0" }]);
  assert.equal(out.rootfs!.spec.from.kind, "tarball");
  assert.deepEqual(app.spec.origin, { file: "stacker.yaml", line: 20, instruction: "layer app" });
});

function errorOf(text: string, options: StackerOptions = {}): UserError {
  try {
    load({ "stacker.yaml": text }, options);
  } catch (e) {
    assert.ok(e instanceof UserError, String(e));
    return e;
  }
  assert.fail("expected an error");
}

test("stacker.yaml mistakes name the file and line", () => {
  assert.match(errorOf("a:\n  from:\n    type: docker\n    url: docker://x:${{TAG}}\n").message, /stacker\.yaml:4: \$\{\{TAG\}\} has no value/);
  assert.match(errorOf("a:\n  from: {type: scratch}\nb:\n  from: {type: built, tag: nope}\n").message, /stacker\.yaml:3: layer b: no layer named nope/);
  assert.match(errorOf("a:\n  from: {type: scratch}\n  rn: x\n").message, /stacker\.yaml:1: layer a: unknown key "rn"/);
  assert.match(errorOf("a: [\n").message, /stacker\.yaml:\d+: /);
});

test("build_env and the host variables build_env_passthrough matches are in the run's environment, not the image's; os/arch pin the layer's platform", () => {
  process.env.MSTAGE_TEST_PASS_A = "from host";
  process.env.MSTAGE_TEST_PASS_AB = "not whole-name match";
  try {
    const { out } = load({
      "stacker.yaml": [
        "a:",
        "  from: {type: scratch}",
        "  build_env: {GREETING: \"it's\", MSTAGE_TEST_PASS_A: overridden}",
        "  build_env_passthrough: [\"MSTAGE_TEST_PASS_.\"]",
        "  run: echo $GREETING",
        "  arch: arm64",
        "b:",
        "  from: {type: built, tag: a}",
        "  build_env_passthrough: [\"MSTAGE_TEST_PASS_.\"]",
        "  run: echo b",
        "  os: linux",
        "",
      ].join("\n"),
    });
    assert.deepEqual(out.a!.spec.run, ["export STACKER_LAYER_NAME='a' MSTAGE_TEST_PASS_A='overridden' GREETING='it'\\''s'\necho $GREETING"]);
    assert.deepEqual(out.a!.spec.env, {}, "build_env stays out of the image config");
    assert.equal(out.a!.spec.platform, "linux/arm64");
    assert.deepEqual(out.b!.spec.run, ["export STACKER_LAYER_NAME='b' MSTAGE_TEST_PASS_A='from host'\necho b"]);
    assert.equal(out.b!.spec.platform, "linux/amd64", "os alone is the host's arch on that os");
  } finally {
    delete process.env.MSTAGE_TEST_PASS_A;
    delete process.env.MSTAGE_TEST_PASS_AB;
  }
  assert.match(errorOf("a:\n  from: {type: scratch}\n  arch: 7\n").message, /stacker\.yaml:1: layer a: os and arch must be strings/);
  assert.match(errorOf("a:\n  from: {type: scratch}\n  arch: z80\n  os: linux/x\n").message, /stacker\.yaml:1: layer a: os "linux\/x" and arch "z80" are not a platform/);
  assert.match(errorOf("a:\n  from: {type: scratch}\n  build_env: [x]\n").message, /build_env must be a map/);
});

test("generate_labels runs in a stage of its own on the layer; the layer's image takes its labels from /stacker/oci-labels", () => {
  const { out } = load({ "stacker.yaml": "a:\n  from: {type: scratch}\n  run: echo a\n  labels: {fixed: v}\n  generate_labels: |\n    echo -n rocks > /stacker/oci-labels/meshuggah\n" });
  const a = out.a!;
  assert.equal(a.name, "a");
  assert.deepEqual(a.spec.labels, { fixed: "v" });
  assert.equal(a.spec.labelsFrom?.path, "/stacker/oci-labels");
  const labeller = a.spec.labelsFrom!.stage;
  assert.equal(labeller.name, "a.generate-labels");
  assert.deepEqual(labeller.spec.run, ["export STACKER_LAYER_NAME='a'\nmkdir -p /stacker/oci-labels\necho -n rocks > /stacker/oci-labels/meshuggah\n"]);
  assert.equal(a.spec.from.kind === "stage" && a.spec.from.stage.name, "a.content");
  assert.equal(labeller.spec.from.kind === "stage" && labeller.spec.from.stage, a.spec.from.kind === "stage" && a.spec.from.stage, "the labels run on the layer's content");
  assert.match(errorOf("a:\n  from: {type: scratch}\n  generate_labels: [1]\n").message, /stacker\.yaml:1: layer a: generate_labels must be a script/);
});

test("imports are under /stacker/imports (the deprecated import under /stacker); http(s) imports are downloads, a hash pins them and is checked on local files", () => {
  const sha = (s: string) => createHash("sha256").update(s).digest("hex");
  const { out } = load({
    "stacker.yaml": [
      "a:",
      "  from: {type: scratch}",
      "  imports:",
      "    - ./f.txt",
      `    - path: ./g.txt`,
      `      hash: ${sha("g\n")}`,
      `    - path: https://example.com/dl/tool.tgz`,
      `      hash: ${"c".repeat(64)}`,
      "    - path: http://example.com/x",
      "      dest: /opt/x",
      "  run: ls /stacker/imports",
      "",
    ].join("\n"),
    "f.txt": "f\n",
    "g.txt": "g\n",
  });
  assert.deepEqual(out.a!.spec.copy.map(([d, s]) => [d, s.kind, s.kind === "http" ? s.sha256 : undefined, s.mode]), [
    ["/stacker/imports/f.txt", "local", undefined, undefined],
    ["/stacker/imports/g.txt", "local", undefined, undefined],
    ["/stacker/imports/tool.tgz", "http", `sha256:${"c".repeat(64)}`, 0o644],
    ["/opt/x", "http", undefined, 0o644],
  ]);
  const bad = "a:\n  from: {type: scratch}\n  imports:\n    - path: ./g.txt\n      hash: " + "ab".repeat(32) + "\n  run: ls\n";
  try {
    load({ "stacker.yaml": bad, "g.txt": "g\n" });
    assert.fail("expected an error");
  } catch (e) {
    assert.match((e as Error).message, /stacker\.yaml:1: layer a: import \.\/g\.txt: its sha256 is [0-9a-f]{64}, not the hash (ab){32}/);
  }
  assert.match(errorOf("a:\n  from: {type: scratch}\n  imports:\n    - path: ./x\n      mod: 1\n").message, /import \.\/x: unknown key "mod"/);
  assert.match(errorOf("a:\n  from: {type: scratch}\n  imports:\n    - ftp://x/y\n").message, /only local paths, http\(s\):\/\/ and stacker:\/\/ imports/);
});
