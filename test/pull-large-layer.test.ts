// A pull whose layer is large enough (≥ 32 MiB compressed) to be extracted on the worker thread,
// driven through the built CLI: thousands of small files (created several at a time off the
// thread), a few large ones, a hardlink, a symlink and a read-only dir all arrive with their
// content, modes and times, the RUN on top sees them, and gc --verify finds the extracted layer intact.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, linkSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient } from "@mstage/runtime";
import { CLI, cliRegistryUnavailable, makeTestImage, registrySuite } from "./helpers/registry.ts";

/** What unpack.ts extracts on a worker from (WORKER_FROM); the layer must be at least this big. */
const WORKER_FROM = 32 << 20;

/** Fills `dir` with ~35 MiB of random files and writes sha256sum's list of them to sums.txt. */
function fillTree(dir: string): void {
  const sums: string[] = [];
  const put = (rel: string, bytes: Buffer, mode = 0o644) => {
    writeFileSync(join(dir, rel), bytes, { mode });
    chmodSync(join(dir, rel), mode);
    sums.push(`${createHash("sha256").update(bytes).digest("hex")}  ./${rel}`);
  };
  for (let d = 0; d < 48; d++) {
    mkdirSync(join(dir, "many", `d${d}`), { recursive: true });
    for (let f = 0; f < 50; f++) put(`many/d${d}/f${f}`, randomBytes(((d * 50 + f) * 7919) % 24577));
  }
  mkdirSync(join(dir, "big"));
  for (let i = 0; i < 3; i++) put(`big/b${i}`, randomBytes((2 << 20) + i));
  put("many/run.sh", Buffer.from("#!/bin/sh\necho ran\n"), 0o755);
  put("many/secret", randomBytes(100), 0o600);
  linkSync(join(dir, "many/d0/f1"), join(dir, "many/hard"));
  symlinkSync("d1/f1", join(dir, "many/sym"));
  mkdirSync(join(dir, "ro"));
  put("ro/inside", randomBytes(5000));
  chmodSync(join(dir, "ro"), 0o555);
  writeFileSync(join(dir, "sums.txt"), sums.join("\n") + "\n");
}

describe("a pull of a layer extracted on the worker", { skip: cliRegistryUnavailable() }, () => {
  const client = new RegistryClient();
  const base = makeTestImage({ trees: [fillTree], label: "large-layer" });
  const big = base.layers[1]!;
  const suite = registrySuite({
    prefix: "mstage-large-layer-",
    client,
    push: { "base/large:1": base },
    images: ({ reg }) => `import { image, stage } from "mstage";
export const app = stage("app", {
  from: image("${reg.host}/base/large:1"),
  run: [
    "cd / && busybox sha256sum -c -s sums.txt",
    "test $(busybox stat -c %a /ro) = 555 && test $(busybox stat -c %a /many/run.sh) = 755 && test $(busybox stat -c %a /many/secret) = 600",
    "test $(busybox stat -c %h /many/hard) = 2 && test $(busybox readlink /many/sym) = d1/f1 && test $(/many/run.sh) = ran",
    "test $(busybox stat -c %Y /many/d3/f7) = 0 && test $(busybox stat -c %Y /big/b1) = 0 && test $(busybox stat -c %Y /ro) = 0",
    "test $(busybox find /many -type f | busybox wc -l) = 2403 && echo ok > /checked",
  ].join(" && "),
});
`,
  });
  const mstage = (args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args, "--store", join(suite.tmp, "store")], { cwd: suite.project, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
    return { code: r.status, out: r.stdout, all: r.stdout + r.stderr };
  };

  test("every file, link and mode of a ≥ 32 MiB layer arrives, the RUN sees them, and gc --verify finds the layer intact", () => {
    assert.ok(big.size >= WORKER_FROM, `the layer is ${big.size} bytes, under the worker's ${WORKER_FROM}: the test would not reach the worker`);
    const up = mstage(["up"]);
    assert.equal(up.code, 0, up.all);
    assert.ok(readdirSync(join(suite.tmp, "store", "layers")).includes(big.diffId.slice(7)), `layer ${big.diffId} was not extracted by the pull`);
    const verify = mstage(["gc", "--verify"]);
    assert.equal(verify.code, 0, verify.all);
    assert.match(verify.out, /and [1-9]\d* extracted layer\(s\): all intact/, verify.all);
  });
});
