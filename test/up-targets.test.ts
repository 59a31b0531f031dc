// `mstage up <targets>` next to an output that holds other images: the refs not built this run stay
// as they were (stacker and `docker build --target` behave so), and a build-only stage named on the
// command line is built into the store but written out only when an --output is given.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { REPO, copyProject, expectOk, layoutRefs, mstageAs, skopeoInspect, testUsers, tool, userDir } from "./up-harness.ts";

const FIXTURE = join(REPO, "test/fixtures/up-busybox");
const why = !existsSync("/bin/busybox") ? "busybox-static is not installed (/bin/busybox): run .ci/setup" : !tool("skopeo") ? "skopeo missing: run .ci/setup" : undefined;

/** Every blob that index.json reaches through manifests and configs exists in the layout. */
function assertComplete(layout: string): void {
  const blob = (d: string) => join(layout, "blobs/sha256", d.replace(/^sha256:/, ""));
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  for (const m of index.manifests) {
    const manifest = JSON.parse(readFileSync(blob(m.digest), "utf8")) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [manifest.config, ...manifest.layers]) assert.ok(existsSync(blob(d.digest)), `${d.digest} of ${m.digest} is in the layout`);
  }
}

test("up <targets> keeps the output's other images; a named build-only stage is built, not written, unless --output says so", { timeout: 5 * 60_000 }, async (t) => {
  if (why) return t.skip(why);
  const user = testUsers()[0]!.name;
  const project = copyProject(FIXTURE, user, "up-targets");
  const store = userDir(user, "store");
  t.after(() => {
    rmSync(project, { recursive: true, force: true });
    rmSync(store, { recursive: true, force: true });
  });
  const mstage = mstageAs(user, project, store);
  const layout = join(project, "oci");

  expectOk(await mstage(["up", "--progress", "plain"]), "first up");
  const all = layoutRefs(layout);
  assert.deepEqual(Object.keys(all).sort(), ["app", "flat", "localhost/up-test/app:1.0", "packed"]);

  const one = expectOk(await mstage(["up", "packed", "--progress", "plain"]), "up packed");
  assert.match(one.stdout, /packed/);
  assert.deepEqual(layoutRefs(layout), all, "app, its tag and flat are still in ./oci, unchanged");
  assertComplete(layout);
  assert.equal((skopeoInspect(layout, "app") as { Labels: Record<string, string> }).Labels["org.example.flavour"], "plain");

  const buildOnly = expectOk(await mstage(["up", "build", "--progress", "plain"]), "up build");
  assert.match(buildOnly.stderr + buildOnly.stdout, /build is build-only: kept in the store, not written as an output \(pass --output oci:DIR to write it\)/);
  assert.deepEqual(layoutRefs(layout), all, "no ref for the build-only stage, nothing else dropped");

  const elsewhere = join(project, "debug-oci");
  expectOk(await mstage(["up", "build", "--output", `oci:${elsewhere}`, "--progress", "plain"]), "up build --output");
  assert.deepEqual(Object.keys(layoutRefs(elsewhere)), ["build"]);
  assertComplete(elsewhere);

  // Without targets, the output is the exported stages exactly, as before.
  expectOk(await mstage(["up", "--output", `oci:${elsewhere}`]), "up --output");
  assert.deepEqual(Object.keys(layoutRefs(elsewhere)).sort(), ["app", "flat", "localhost/up-test/app:1.0", "packed"]);
});
