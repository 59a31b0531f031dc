import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { parseModInfo, readGoBuildInfo } from "./gobuildinfo.ts";

test("module lines: the main module, deps, and a replace directive kept beside the module it replaces", () => {
  const info = parseModInfo(
    "go1.22.1",
    [
      "path\texample.com/app/cmd/app",
      "mod\texample.com/app\t(devel)\t",
      "dep\tgolang.org/x/sys\tv0.18.0\th1:abc=",
      "dep\texample.com/greet\tv0.1.0\t",
      "=>\t./greet\t(devel)\t",
      "build\t-trimpath=true",
      "build\tCGO_ENABLED=0",
      "",
    ].join("\n"),
  );
  assert.equal(info.goVersion, "go1.22.1");
  assert.equal(info.path, "example.com/app/cmd/app");
  assert.deepEqual(info.main, { path: "example.com/app", version: "(devel)" });
  assert.deepEqual(info.deps, [
    { path: "golang.org/x/sys", version: "v0.18.0", sum: "h1:abc=" },
    { path: "example.com/greet", version: "v0.1.0", replacedBy: { path: "./greet", version: "(devel)" } },
  ]);
  assert.deepEqual(info.settings, { "-trimpath": "true", CGO_ENABLED: "0" });
});

test("a Go binary from a Debian package: its .go.buildinfo section gives the Go version and package path", async (t) => {
  const bin = "/usr/bin/umoci";
  if (!existsSync(bin)) return t.skip(`${bin} missing (the umoci package, installed by .ci/setup)`);
  const fh = await open(bin, "r");
  try {
    const info = await readGoBuildInfo(fh);
    assert.ok(info, "build info found");
    assert.match(info.goVersion, /^go1\.\d+/);
    assert.equal(info.path, "github.com/opencontainers/umoci/cmd/umoci");
  } finally {
    await fh.close();
  }
});

test("a file that is not a Go binary has no build info", async () => {
  const fh = await open(process.execPath, "r");
  try {
    assert.equal(await readGoBuildInfo(fh), undefined);
  } finally {
    await fh.close();
  }
});
