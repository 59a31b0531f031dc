import { test } from "node:test";
import assert from "node:assert/strict";
import { image, inline, scratch, tarball } from "./api/index.ts";
import { stage } from "./api/stage.ts";
import { buildGraph } from "./graph.ts";

const base = stage("g-base", { from: image("alpine:3.20") });
const tool = stage("g-tool", { from: base, run: "make" });
const rootfs = stage("g-rootfs", { from: base, run: "tar" });
const app = stage("g-app", { from: tarball(rootfs.path("/rootfs.tar")), copy: { "/bin/t": tool.path("/t"), "/x": inline("x") } });
const lone = stage("g-lone", { from: scratch() });
const all = [base, tool, rootfs, app, lone];

test("order puts dependencies first (from, tarball and path edges) and leaves unreachable stages unused", () => {
  const g = buildGraph(all, [app]);
  assert.deepEqual(g.order.map((s) => s.name), ["g-base", "g-tool", "g-rootfs", "g-app"]);
  assert.deepEqual(g.unused.map((s) => s.name), ["g-lone"]);
  assert.deepEqual(g.deps(app).map((s) => s.name), ["g-rootfs", "g-tool"]);
});

test("selected names replace the exported targets", () => {
  const g = buildGraph(all, [app], ["g-tool"]);
  assert.deepEqual(g.targets.map((s) => s.name), ["g-tool"]);
  assert.deepEqual(g.order.map((s) => s.name), ["g-base", "g-tool"]);
});

test("an unknown selected name gets a did-you-mean and the list of stages", () => {
  assert.throws(() => buildGraph(all, [app], ["g-tol"]), /no stage named "g-tol" \(did you mean "g-tool"\?\); stages: g-base, g-tool, g-rootfs, g-app, g-lone/);
});

test("stages reached only by reference still join the graph", () => {
  const g = buildGraph([app], [app]);
  assert.deepEqual(g.order.map((s) => s.name), ["g-base", "g-rootfs", "g-tool", "g-app"]);
});
