// The pull that extracts layers while they download: killed with SIGKILL half way through a layer's
// body, it leaves nothing trusted in the store (no layer blob, no extracted layer, no result, gc
// --verify clean), and the next `up` completes; its --json stream reports the pull's bytes.
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "@mstage/runtime";
import { CLI, cliRegistryUnavailable, makeTestImage, registrySuite } from "./helpers/registry.ts";

describe("a pipelined pull", { skip: cliRegistryUnavailable() }, () => {
  let store: string;
  const client = new RegistryClient();
  // A 4 MB layer of random bytes besides busybox, so that half its body is well inside the body.
  const base = makeTestImage({ extraLayers: [4_000_000], label: "pipelined" });
  const big = base.layers[1]!;

  const mstage = (args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args, "--store", store], { cwd: suite.project, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    return { code: r.status, out: r.stdout, err: r.stderr, all: r.stdout + r.stderr };
  };
  // The suite.proxy lives in this process: a run that goes through it must not block the event loop.
  const mstageAsync = (args: string[]) =>
    new Promise<{ code: number | null; out: string; all: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args, "--store", store], { cwd: suite.project, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
      let out = "";
      let err = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (err += d));
      child.once("close", (code) => resolve({ code, out, all: out + err }));
    });
  const hex = (d: string) => d.slice("sha256:".length);
  const entries = (sub: string) => (existsSync(join(store, sub)) ? readdirSync(join(store, sub)) : []);

  const suite = registrySuite({
    prefix: "mstage-pipelined-",
    client,
    proxy: true,
    push: { "base/big:1": base },
    images: ({ proxy, reg }) => `import { image, stage } from "mstage";
export const app = stage("app", {
  from: image("${proxy.host}/base/big:1"),
  run: "test -s /data/blob0 && echo pulled > /done.txt",
  tags: ["${reg.host}/out/app:1"],
});
`,
  });
  before(() => (store = join(suite.tmp, "store")));

  test("SIGKILL half way through a layer's body leaves nothing trusted; the next up pulls it and builds", async () => {
    let stalled!: () => void;
    const holding = new Promise<void>((resolve) => (stalled = resolve));
    suite.proxy.decide = (req) => (req.method === "GET" && req.url?.endsWith(`/blobs/${big.digest}`) ? { kind: "stall", onStall: stalled } : { kind: "pass" });
    // Its own process group, so the kill takes mstage and the copy of it inside the user namespace at once.
    const child = spawn(process.execPath, [CLI, "up", "--json", "--store", store], { cwd: suite.project, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
    let output = "";
    // The suite.proxy has sent half the big layer, and mstage has taken some of it in: its pull progress
    // counts more bytes than all the other layers have.
    let receiving!: () => void;
    const received = new Promise<void>((resolve) => (receiving = resolve));
    const others = base.layers.reduce((n, l) => n + l.size, 0) - big.size;
    child.stdout.on("data", (d) => {
      output += d;
      for (const m of output.matchAll(/"type":"transfer".*?"done":(\d+)/g)) if (Number(m[1]) > others) receiving();
    });
    child.stderr.on("data", (d) => (output += d));
    const closed = new Promise<NodeJS.Signals | null>((resolve) => child.once("close", (_code, signal) => resolve(signal)));
    await Promise.race([Promise.all([holding, received]), closed.then(() => assert.fail(`mstage ended before the layer's body stalled:\n${output}`))]);
    const group = spawnSync("pgrep", ["-g", String(child.pid)], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean);
    process.kill(-child.pid!, "SIGKILL");
    assert.equal(await closed, "SIGKILL", output);
    // The copy inside the namespace is not our child, so no event says when it is gone (and its lock
    // with it): watch /proc until init has reaped it.
    const deadline = Date.now() + 10_000;
    while (group.some((pid) => existsSync(`/proc/${pid}`))) {
      assert.ok(Date.now() < deadline, `processes ${group.join(", ")} outlived SIGKILL by 10 s`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    for (const l of base.layers) {
      assert.ok(!entries("blobs/sha256").includes(hex(l.digest)), `layer blob ${l.digest} is in the store after the kill`);
      assert.ok(!entries("layers").includes(hex(l.diffId)), `layer ${l.diffId} is extracted in the store after the kill`);
    }
    assert.deepEqual(entries("results"), [], "a result was recorded for a pull that never finished");
    assert.ok(entries("tmp").length > 0, "the interrupted pull wrote nothing to suite.tmp/ (was it killed before any byte of the layer?)");

    const verify = mstage(["gc", "--verify"]);
    assert.equal(verify.code, 0, verify.all);
    assert.match(verify.out, /verified \d+ blob\(s\) and 0 extracted layer\(s\): all intact/, verify.all);
    assert.deepEqual(entries("tmp"), [], "gc left the killed pull's temp entries");

    suite.proxy.decide = () => ({ kind: "pass" });
    const up = await mstageAsync(["up", "--json"]);
    assert.equal(up.code, 0, up.all);
    const events = up.out.trim().split("\n").map((l) => JSON.parse(l) as { type: string; [k: string]: unknown });
    const pulls = events.filter((e) => e.type === "transfer" && e.direction === "pull");
    const total = base.layers.reduce((n, l) => n + l.size, 0);
    assert.ok(pulls.length >= 1, `no pull progress in:\n${up.out}`);
    for (const [i, e] of pulls.entries()) {
      assert.equal(e.stage, "app");
      assert.equal(e.ref, `${suite.proxy.host}/base/big:1`);
      assert.equal(e.total, total);
      assert.equal(typeof e.bytesPerSecond, "number");
      if (i > 0) assert.ok((e.done as number) >= (pulls[i - 1]!.done as number), `done went down: ${JSON.stringify(pulls)}`);
    }
    assert.equal(pulls.at(-1)!.done, total, "the last progress event is not the whole image");
    for (const l of base.layers) {
      assert.ok(entries("blobs/sha256").includes(hex(l.digest)), `layer blob ${l.digest} missing after the pull`);
      assert.ok(entries("layers").includes(hex(l.diffId)), `layer ${l.diffId} was not extracted by the pull`);
    }
    assert.ok(events.some((e) => e.type === "stage-done" && e.stage === "app" && e.outcome === "built"), up.out);
    const clean = mstage(["gc", "--verify"]);
    assert.equal(clean.code, 0, clean.all);
    assert.match(clean.out, /and [1-9]\d* extracted layer\(s\): all intact/, clean.all);
  });

  test("up --push --json reports the push's bytes, never decreasing, the last one the whole image", async () => {
    suite.proxy.decide = () => ({ kind: "pass" });
    const r = await mstageAsync(["up", "--push", "--json"]);
    assert.equal(r.code, 0, r.all);
    const pushes = r.out.trim().split("\n").map((l) => JSON.parse(l) as { type: string; [k: string]: unknown }).filter((e) => e.type === "transfer" && e.direction === "push");
    assert.ok(pushes.length >= 1, `no push progress in:\n${r.out}`);
    for (const [i, e] of pushes.entries()) {
      assert.equal(e.ref, `${suite.reg.host}/out/app:1`);
      if (i > 0) assert.ok((e.done as number) >= (pushes[i - 1]!.done as number), `done went down: ${JSON.stringify(pushes)}`);
    }
    const last = pushes.at(-1)!;
    assert.ok((last.total as number) > big.size, `the push's total ${last.total} is not the whole image`);
    assert.equal(last.done, last.total);
  });
});
