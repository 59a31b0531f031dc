// Mounts a run can use beyond host binds (issue 10, item 10): another stage's path bound read-only
// (BuildKit's RUN --mount=type=bind,from=stage) and tmpfs (--mount=type=tmpfs). Neither is part of
// the layer; the bound stage is a dependency whose changes rebuild the stage.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { imageEntries } from "./helpers/image-entries.ts";
import { expectOk, mstageAs, testUsers, userDir, writeAs } from "./up-harness.ts";

function imagesTs(dep: string): string {
  return `import { local, scratch, stage } from "mstage";
const base = stage("base", {
  from: scratch(),
  copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) },
  shell: ["/bin/busybox", "sh", "-c"],
  run: "/bin/busybox --install -s /bin",
});
const deps = stage("deps", { from: base, run: "mkdir -p /out/lib && echo ${dep} > /out/lib/dep.txt" });
export const app = stage("app", {
  from: base,
  binds: { "/deps": deps.path("/out/lib") },
  tmpfs: ["/scratch"],
  run: "cat /deps/dep.txt > /seen.txt; echo temp > /scratch/t; ls /scratch > /scratch-list.txt; if touch /deps/x 2>/dev/null; then echo writable; else echo readonly; fi > /ro.txt",
});
`;
}

const sha = (s: string) => "sha256:" + createHash("sha256").update(s).digest("hex");

for (const user of testUsers()) {
  test(`binds from another stage's path and tmpfs mounts as ${user.name}`, { timeout: 3 * 60_000 }, async (t) => {
    if (user.skip) return t.skip(user.skip);
    const project = userDir(user.name, "run-mounts");
    const store = userDir(user.name, "run-mounts-store");
    t.after(() => {
      rmSync(project, { recursive: true, force: true });
      rmSync(store, { recursive: true, force: true });
    });
    writeAs(user.name, join(project, "images.ts"), imagesTs("dep-v1"));
    const mstage = mstageAs(user.name, project, store);
    expectOk(await mstage(["up", "-q"]), "up");
    let app = imageEntries(join(project, "oci"), "app");
    assert.equal(app.get("seen.txt")?.content, sha("dep-v1\n"), "the bound stage's file is readable");
    assert.equal(app.get("ro.txt")?.content, sha("readonly\n"), "a stage bind is read-only");
    assert.equal(app.get("scratch-list.txt")?.content, sha("t\n"), "the tmpfs is writable during run");
    for (const p of ["deps", "scratch"]) assert.equal(app.has(p), false, `/${p} is a mount point, not part of the layer`);

    await t.test("a change in the bound stage rebuilds the stage that binds it", async () => {
      writeAs(user.name, join(project, "images.ts"), imagesTs("dep-v2"));
      const plan = expectOk(await mstage(["plan"]), "plan");
      assert.match(plan.stdout, /~ app\s+rebuild: .*bind \/deps/);
      expectOk(await mstage(["up", "-q"]), "up");
      app = imageEntries(join(project, "oci"), "app");
      assert.equal(app.get("seen.txt")?.content, sha("dep-v2\n"));
    });
  });
}
