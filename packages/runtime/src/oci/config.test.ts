import { test } from "node:test";
import assert from "node:assert/strict";
import { StageError } from "@mstage/core";
import {
  DEFAULT_PATH,
  addLayer,
  applyStageConfig,
  createdTimestamp,
  emptyImageConfig,
  normalisePort,
  runEnv,
  sourceDateEpochFrom,
  squashLayers,
  stageHistoryEntry,
} from "./config.ts";
import { sha256Digest } from "./digest.ts";
import type { ImageConfig } from "./types.ts";

const amd64 = { os: "linux", architecture: "amd64" };

function debianLike(): ImageConfig {
  return {
    architecture: "amd64",
    os: "linux",
    config: {
      Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
      Cmd: ["bash"],
      User: "root",
      Labels: { vendor: "debian" },
      ExposedPorts: { "22/tcp": {} },
    },
    rootfs: { type: "layers", diff_ids: [sha256Digest("base")] },
    history: [{ created_by: "debian rootfs" }],
  };
}

test("a scratch image gets BuildKit's default PATH and WorkingDir /", () => {
  const c = emptyImageConfig(amd64);
  assert.deepEqual(c.config, { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: "/" });
  assert.deepEqual(c.rootfs, { type: "layers", diff_ids: [] });
  assert.equal(c.architecture, "amd64");
  assert.equal(c.os, "linux");
  assert.equal("variant" in c, false);
  assert.equal(emptyImageConfig({ os: "linux", architecture: "arm", variant: "v7" }).variant, "v7");
});

test("env merges by name: an inherited variable keeps its place and takes the stage's value, new ones are appended", () => {
  const c = applyStageConfig(debianLike(), { env: { LANG: "en_US.UTF-8", GOPATH: "/go" } }, "run");
  assert.deepEqual(c.config!.Env, ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=en_US.UTF-8", "GOPATH=/go"]);
});

test("the run phase applies env and workdir only; user, cmd and labels wait for the final phase", () => {
  const spec = { env: { A: "1" }, workdir: "/src", user: "app", cmd: ["/bin/app"], labels: { x: "y" } };
  const run = applyStageConfig(debianLike(), spec, "run");
  assert.equal(run.config!.User, "root");
  assert.deepEqual(run.config!.Cmd, ["bash"]);
  assert.equal(run.config!.WorkingDir, "/src");
  assert.deepEqual(run.config!.Labels, { vendor: "debian" });

  const final = applyStageConfig(debianLike(), spec, "final");
  assert.equal(final.config!.User, "app");
  assert.deepEqual(final.config!.Cmd, ["/bin/app"]);
  assert.deepEqual(final.config!.Labels, { vendor: "debian", x: "y" });
  assert.ok(final.config!.Env!.includes("A=1"));
});

test("setting entrypoint drops the cmd inherited from the base, as Docker does", () => {
  const c = applyStageConfig(debianLike(), { entrypoint: ["/bin/server"] }, "final");
  assert.deepEqual(c.config!.Entrypoint, ["/bin/server"]);
  assert.equal(c.config!.Cmd, undefined);
});

test("entrypoint and cmd set together are both kept", () => {
  const c = applyStageConfig(debianLike(), { entrypoint: ["/bin/server"], cmd: ["--port", "80"] }, "final");
  assert.deepEqual(c.config!.Entrypoint, ["/bin/server"]);
  assert.deepEqual(c.config!.Cmd, ["--port", "80"]);
});

test("cmd alone keeps an inherited entrypoint", () => {
  const base = applyStageConfig(debianLike(), { entrypoint: ["/init"] }, "final");
  const c = applyStageConfig(base, { cmd: ["run"] }, "final");
  assert.deepEqual(c.config!.Entrypoint, ["/init"]);
  assert.deepEqual(c.config!.Cmd, ["run"]);
});

test("exposed ports merge and a bare port becomes tcp; volumes merge; stopSignal is set", () => {
  const c = applyStageConfig(debianLike(), { expose: ["8080", "53/UDP", "7000-7002"], volumes: ["/data"], stopSignal: "SIGINT" }, "final");
  assert.deepEqual(Object.keys(c.config!.ExposedPorts!).sort(), ["22/tcp", "53/udp", "7000-7002/tcp", "8080/tcp"]);
  assert.deepEqual(c.config!.Volumes, { "/data": {} });
  assert.equal(c.config!.StopSignal, "SIGINT");
});

test("a relative workdir continues from the inherited one", () => {
  const a = applyStageConfig(emptyImageConfig(amd64), { workdir: "/src" }, "run");
  assert.equal(applyStageConfig(a, { workdir: "app/../cmd" }, "run").config!.WorkingDir, "/src/cmd");
});

test("applying a stage never mutates the base config", () => {
  const base = debianLike();
  const before = structuredClone(base);
  applyStageConfig(base, { env: { LANG: "x" }, labels: { a: "b" }, expose: ["80"], entrypoint: ["/x"], user: "u" }, "final");
  assert.deepEqual(base, before);
});

test("an invalid port is a StageError naming the stage and the expose key", () => {
  assert.throws(
    () => applyStageConfig(debianLike(), { expose: ["http"] }, "final", { stage: "web" }),
    (e: unknown) => e instanceof StageError && /stage "web", key "expose"/.test(e.message) && /"http"/.test(e.message),
  );
  assert.throws(() => normalisePort("70000"), StageError);
  assert.throws(() => normalisePort("90-80"), StageError);
  assert.equal(normalisePort("443/tcp"), "443/tcp");
});

test("addLayer appends the diff-id and history; a stage without a layer gets an empty_layer entry", () => {
  const created = createdTimestamp(0);
  const d = sha256Digest("layer");
  let c = addLayer(debianLike(), d, stageHistoryEntry("build", { run: ["make"] }, { created, emptyLayer: false }));
  c = addLayer(c, null, stageHistoryEntry("final", {}, { created, emptyLayer: true }));
  assert.deepEqual(c.rootfs.diff_ids, [sha256Digest("base"), d]);
  assert.equal(c.history!.length, 3);
  assert.equal(c.history![1]!.empty_layer, undefined);
  assert.equal(c.history![1]!.created_by, "mstage stage build: RUN make");
  assert.equal(c.history![2]!.empty_layer, true);
  assert.equal(c.created, "1970-01-01T00:00:00Z");
});

test("history says what a stage copied and ran, on one line", () => {
  const h = stageHistoryEntry("build", { copy: [["/src/main.go", { kind: "inline", text: "" }]], run: ["go build \\\n  ./..."] }, { created: "x", emptyLayer: false });
  assert.equal(h.created_by, "mstage stage build: COPY /src/main.go; RUN go build \\ ./...");
});

test("squash leaves one layer and one non-empty history entry, the last", () => {
  const c = squashLayers(addLayer(debianLike(), sha256Digest("l2"), { created_by: "two" }), sha256Digest("all"));
  assert.deepEqual(c.rootfs.diff_ids, [sha256Digest("all")]);
  assert.deepEqual(c.history!.map((h) => h.empty_layer ?? false), [true, false]);
});

test("created comes from SOURCE_DATE_EPOCH, to the second, default 0", () => {
  assert.equal(createdTimestamp(), "1970-01-01T00:00:00Z");
  assert.equal(createdTimestamp(1700000000), "2023-11-14T22:13:20Z");
  assert.equal(sourceDateEpochFrom({}), 0);
  assert.equal(sourceDateEpochFrom({ SOURCE_DATE_EPOCH: "1700000000" }), 1700000000);
  assert.throws(() => sourceDateEpochFrom({ SOURCE_DATE_EPOCH: "yesterday" }), /SOURCE_DATE_EPOCH="yesterday"/);
});

test("runEnv reads Env as a map and supplies the default PATH when the image has none", () => {
  const c = applyStageConfig(debianLike(), { env: { EMPTY: "" } }, "run");
  assert.deepEqual(runEnv(c), { PATH: "/usr/local/bin:/usr/bin:/bin", LANG: "C.UTF-8", EMPTY: "" });
  const bare: ImageConfig = { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } };
  assert.deepEqual(runEnv(bare), { PATH: DEFAULT_PATH });
});

test("healthcheck and onBuild are written as Docker writes them; a base's triggers are not inherited", () => {
  const base = { ...debianLike(), config: { ...debianLike().config, OnBuild: ["RUN base-trigger"] } };
  const c = applyStageConfig(base, { healthcheck: { test: ["CMD-SHELL", "true"], interval: 30e9, retries: 3 }, onBuild: ["RUN make"] }, "final");
  assert.deepEqual(c.config!.Healthcheck, { Test: ["CMD-SHELL", "true"], Interval: 30e9, Retries: 3 });
  assert.deepEqual(c.config!.OnBuild, ["RUN make"]);
  assert.equal(applyStageConfig(base, {}, "final").config!.OnBuild, undefined);
  assert.deepEqual(applyStageConfig(base, {}, "run").config!.OnBuild, ["RUN base-trigger"], "the run phase changes env and workdir only");
});
