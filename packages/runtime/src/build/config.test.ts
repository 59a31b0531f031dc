import { test } from "node:test";
import assert from "node:assert/strict";
import type { StageSpec } from "@mstage/core";
import { applyConfigFields, applyLayerFields } from "./config.ts";

function spec(o: Partial<StageSpec>): StageSpec {
  return {
    from: { kind: "scratch" }, copy: [], run: [], shell: ["/bin/sh", "-c"], env: {}, expose: [], labels: {},
    volumes: [], annotations: {}, network: "host", binds: [], caches: {}, secrets: {}, squash: false, tags: [], ...o,
  } as StageSpec;
}

test("env and labels merge with the stage winning; workdir replaces", () => {
  const base = { Env: ["PATH=/bin", "A=1"], Labels: { a: "1", b: "2" }, WorkingDir: "/old" };
  const c = applyConfigFields(applyLayerFields(base, spec({ env: { A: "2", B: "3" }, workdir: "/new" })), spec({ labels: { b: "x" } }));
  assert.deepEqual(c.Env, ["PATH=/bin", "A=2", "B=3"]);
  assert.deepEqual(c.Labels, { a: "1", b: "x" });
  assert.equal(c.WorkingDir, "/new");
});

test("entrypoint without cmd drops the inherited cmd; ports add up with /tcp by default", () => {
  const base = { Cmd: ["bash"], ExposedPorts: { "80/tcp": {} } } as const;
  const c = applyConfigFields(structuredClone(base) as never, spec({ entrypoint: ["/app"], expose: ["8080", "53/udp"] }));
  assert.equal(c.Cmd, undefined);
  assert.deepEqual(c.Entrypoint, ["/app"]);
  assert.deepEqual(Object.keys(c.ExposedPorts!), ["53/udp", "80/tcp", "8080/tcp"]);
});

test("config-only fields never change the layer fields", () => {
  const s = spec({ cmd: ["x"], user: "app", labels: { l: "1" } });
  assert.deepEqual(applyLayerFields({ Env: ["A=1"] }, s), { Env: ["A=1"] });
});
