import { test } from "node:test";
import assert from "node:assert/strict";
import { LAYER_FORMAT, type StageInputs } from "./keys.ts";
import { diffInputs } from "./reasons.ts";

const inputs = (digest: string, files: StageInputs["files"][string]): StageInputs => ({
  format: LAYER_FORMAT,
  platform: "linux/amd64",
  base: { kind: "scratch" },
  copy: [{ dest: "/src", source: { kind: "local", path: "./src", exclude: [], digest } }],
  run: [],
  shell: ["/bin/sh", "-c"],
  env: {},
  network: "none",
  binds: [],
  config: { expose: [], labels: {}, volumes: [], annotations: {}, squash: false, tags: [] },
  files: { "./src": files },
});

test("changed files are named from the state's fingerprint lines, and from the objects older states hold", () => {
  const now = inputs("sha256:2", `"a.go","f644:1111"\n"b.go","f644:2222"\n"new.go","f644:3333"\n`);
  const lines = inputs("sha256:1", `"a.go","f644:1111"\n"b.go","f644:9999"\n"gone.go","f644:4444"\n`);
  const object = inputs("sha256:1", { "a.go": "f644:1111", "b.go": "f644:9999", "gone.go": "f644:4444" });
  const want = ["local ./src/b.go changed", "local ./src/new.go added", "local ./src/gone.go removed"];
  assert.deepEqual(diffInputs(lines, now), want);
  assert.deepEqual(diffInputs(object, now), want);
});
