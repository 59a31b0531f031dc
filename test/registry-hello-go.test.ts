// The hello-go example through a registry cache: one store builds it (or finds it built) and pushes
// every stage result with --cache-to; a second, empty store then rebuilds it from --cache-from alone.
// The debian() base is pinned in images.lock, so the empty store must key it from the lock and never
// make its rootfs: the stage on it is served from the cache. The first store is the one
// examples.test.ts shares, so the base (a minute of mmdebstrap) is made at most once per test run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO, copyProject, expectOk, layoutRefs, mstageAs, testUsers, tool } from "./up-harness.ts";
import { cliRegistryUnavailable, startRegistry } from "./helpers/registry.ts";
import { testCachePath } from "./helpers/rootfs.ts";

const root = testUsers()[0]!;

function whyNot(): string | undefined {
  const missing = ["mmdebstrap", "skopeo"].filter((t) => !tool(t));
  if (missing.length) return `missing ${missing.join(", ")}: run .ci/setup`;
  return cliRegistryUnavailable();
}

/** The store examples.test.ts keeps between runs for this user (it holds the debian base). */
function examplesStore(): string {
  const uid = execFileSync("id", ["-u", root.name], { encoding: "utf8" }).trim();
  const dir = join(testCachePath(uid), "examples-store");
  mkdirSync(dir, { recursive: true });
  return dir;
}

test(
  "an empty store with --cache-from rebuilds hello-go without making its pinned debian base or running a step, to the same digest",
  { timeout: 15 * 60_000, skip: whyNot() },
  async (t) => {
    const reg = await startRegistry();
    const project = copyProject(join(REPO, "examples", "hello-go"), root.name, "regcache-hello-go");
    const emptyStore = mkdtempSync(join(tmpdir(), "mstage-regcache-store-"));
    t.after(async () => {
      await reg.stop();
      rmSync(project, { recursive: true, force: true });
      rmSync(emptyStore, { recursive: true, force: true });
    });
    const cache = `registry://${reg.host}/cache/hello-go`;

    const started = Date.now();
    const first = expectOk(await mstageAs(root.name, project, examplesStore())(["up", "--cache-to", cache, "--progress", "plain"]), "up --cache-to");
    t.diagnostic(`first up (shared store, --cache-to): ${Date.now() - started} ms`);
    const want = layoutRefs(join(project, "oci")).hello;
    assert.match(want ?? "", /^sha256:[a-f0-9]{64}$/);

    const again = Date.now();
    const second = expectOk(
      await mstageAs(root.name, project, emptyStore)(["up", "--cache-from", cache, "--output", "oci:oci-b", "--progress", "plain"]),
      "up --cache-from in an empty store",
    );
    t.diagnostic(`second up (empty store, --cache-from): ${Date.now() - again} ms`);
    const all = second.stdout + second.stderr;
    assert.match(second.stdout, /0 built, 2 cached/);
    assert.match(second.stderr, /\[build\] cached/);
    assert.match(second.stderr, /\[hello\] cached/);
    assert.doesNotMatch(all, /\] debian bookworm|mmdebstrap/, "the pinned debian base is not made");
    assert.doesNotMatch(all, /\] (run|building|rebuilding)\b/, "no step runs");
    assert.equal(readdirSync(join(emptyStore, "results")).length, 2, "the store holds the two cached stage results and no debian base");
    assert.equal(layoutRefs(join(project, "oci-b")).hello, want, `same manifest digest as the first build (first build's output:\n${first.stderr})`);
  },
);
