import { test } from "node:test";
import assert from "node:assert/strict";
import { debian, image, scratch } from "./api/index.ts";
import { stage, stageFor } from "./api/stage.ts";
import { buildGraph } from "./graph.ts";
import type { Stage } from "./model.ts";

const HOST = "linux/amd64";
const names = (ss: Stage[]) => ss.map((s) => `${s.name} @${s.spec.platform}`);

test("a target with platforms is built once per platform with what it reads; pinned and host stages keep theirs", () => {
  const tools = stage("i-tools", { from: image("alpine:3.20"), run: "make" });
  const emu = stage("i-emu", { from: image("alpine:3.20"), platform: "linux/arm64", run: "true" });
  // A host stage's spec function sees the target platform: GOARCH follows it.
  const build = stageFor("i-build", (t) => ({ platform: "host", from: tools, env: { GOARCH: t.arch }, run: "go build" }));
  const app = stage("i-app", {
    platforms: ["linux/amd64", "linux/aarch64"],
    from: scratch(),
    copy: { "/app": build.path("/out/app"), "/tools": tools.path("/t"), "/emu": emu.path("/e") },
  });
  const g = buildGraph([tools, emu, build, app], [app], undefined, { host: HOST });
  assert.deepEqual(names(g.order), [
    "i-tools [linux/amd64] @linux/amd64",
    "i-tools [linux/arm64] @linux/arm64",
    "i-emu @linux/arm64",
    "i-build [linux/amd64] @linux/amd64",
    "i-build [linux/arm64] @linux/amd64",
    "i-app [linux/amd64] @linux/amd64",
    "i-app [linux/arm64] @linux/arm64",
  ]);
  const armBuild = g.order.find((s) => s.name === "i-build [linux/arm64]")!;
  assert.deepEqual(armBuild.spec.env, { GOARCH: "arm64" });
  assert.equal(armBuild.definition, build);
  // The host stage reads its base for the build machine, whatever it builds for.
  assert.equal(g.deps(armBuild)[0]!.name, "i-tools [linux/amd64]");
  const armApp = g.order.find((s) => s.name === "i-app [linux/arm64]")!;
  assert.deepEqual(g.deps(armApp).map((s) => s.name), ["i-build [linux/arm64]", "i-tools [linux/arm64]", "i-emu"]);
  assert.deepEqual(g.outputs.map((o) => [o.stage.name, o.index, o.instances.length]), [["i-app", true, 2]]);
  assert.deepEqual(g.targets.map((s) => s.name), ["i-app [linux/amd64]", "i-app [linux/arm64]"]);
});

test("a stage with no platform keeps its plain name and the host's platform; a debian() base learns its stage's", () => {
  const base = stage("i-deb", { from: debian({ suite: "bookworm" }), platform: "linux/arm64" });
  const plain = stage("i-plain", { from: scratch() });
  const g = buildGraph([base, plain], [base, plain], undefined, { host: HOST });
  assert.deepEqual(names(g.order), ["i-deb @linux/arm64", "i-plain @linux/amd64"]);
  const from = g.order[0]!.spec.from;
  assert.equal(from.kind === "debian" && from.platform, "linux/arm64");
  assert.deepEqual(g.outputs.map((o) => o.index), [false, false]);
});

test("--platform restricts a platforms list, gives the others their platforms, and refuses one that matches nothing", () => {
  const multi = stage("i-multi", { platforms: ["linux/amd64", "linux/arm64"], from: scratch() });
  const plain = stage("i-bare", { from: scratch() });
  const g = buildGraph([multi, plain], [multi, plain], undefined, { host: HOST, platforms: ["linux/arm64"] });
  assert.deepEqual(names(g.order), ["i-multi [linux/arm64] @linux/arm64", "i-bare [linux/arm64] @linux/arm64"]);
  assert.throws(() => buildGraph([multi], [multi], undefined, { host: HOST, platforms: ["linux/s390x"] }), /stage "i-multi" is built for linux\/amd64, linux\/arm64; --platform linux\/s390x matches none of them/);
});

test("a stage whose platforms leave out what a reader needs is an error naming both", () => {
  const lib = stage("i-lib", { platforms: ["linux/amd64"], from: scratch() });
  const app = stage("i-user", { platforms: ["linux/amd64", "linux/arm64"], from: scratch(), copy: { "/lib": lib.path("/lib") } });
  assert.throws(() => buildGraph([lib, app], [app], undefined, { host: HOST }), /stage "i-lib", key "platforms".*is built for linux\/amd64, but stage "i-user" needs it for linux\/arm64/);
});

test("stage() checks platform and platforms at once", () => {
  assert.throws(() => stage("i-bad1", { from: scratch(), platform: "linux/arm64", platforms: ["linux/amd64"] }), /key "platforms".*either "platform".*or "platforms"/);
  assert.throws(() => stage("i-bad2", { from: scratch(), platforms: ["host"] }), /"host" belongs in "platform"/);
  assert.throws(() => stage("i-bad3", { from: scratch(), platforms: ["linux/arm64", "linux/aarch64"] }), /lists linux\/arm64 twice/);
  assert.throws(() => stage("i-bad4", { from: scratch(), platforms: [] }), /is empty/);
  assert.throws(() => stageFor("i-bad5", (t) => ({ from: scratch(), platform: t.arch === "amd64" ? "linux/amd64" : "linux/arm64" })).specFor("linux/arm64"), /the same platform and platforms for every target/);
  assert.equal(stage("i-ok", { from: scratch(), platform: "linux/aarch64" }).spec.platform, "linux/arm64");
});
