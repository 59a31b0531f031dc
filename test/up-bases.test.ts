// `mstage up` with external bases: image() from a real docker-registry on loopback (the image was
// built and pushed by mstage itself) and oci() from another project's layout. The base's layers are
// reused as they are, its config inherited, and the base is recorded in images.lock and annotations.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { registryUnavailable, startRegistry } from "./helpers/registry.ts";
import { REPO, copyProject, expectOk, layoutRefs, mstageAs, runBundle, skopeoInspect, testUsers, tool, unpack, userDir, writeAs } from "./up-harness.ts";

const missing = ["skopeo", "umoci", "runc"].filter((t) => !tool(t));

for (const user of testUsers()) {
  test(`image() and oci() bases as ${user.name}`, { timeout: 5 * 60_000 }, async (t) => {
    const why = user.skip ?? registryUnavailable() ?? (missing.length ? `missing ${missing.join(", ")}: run .ci/setup` : undefined);
    if (why) return t.skip(why);
    const registry = await startRegistry();
    const first = copyProject(join(REPO, "test/fixtures/up-busybox"), user.name, "bases-a");
    const second = userDir(user.name, "bases-b");
    const store = userDir(user.name, "bases-store");
    t.after(async () => {
      await registry.stop();
      for (const d of [first, second, store]) rmSync(d, { recursive: true, force: true });
    });

    const ref = `${registry.host}/up-test/app:1.0`;
    const file = join(first, "images.ts");
    writeAs(user.name, file, readFileSync(file, "utf8").replace('"localhost/up-test/app:1.0"', JSON.stringify(ref)));
    expectOk(await mstageAs(user.name, first, store)(["up", "-q", "--push"]), "build and push the base");
    const pushed = layoutRefs(join(first, "oci"))["app"];

    writeAs(
      user.name,
      join(second, "images.ts"),
      `import { image, inline, oci, stage } from "mstage";
export const pulled = stage("pulled", {
  from: image(${JSON.stringify(ref)}),
  copy: { "/etc/extra.txt": inline("extra\\n") },
  run: "cat /etc/extra.txt > /extra-seen.txt",
});
export const layout = stage("layout", {
  from: oci(${JSON.stringify(join(first, "oci"))}, "app"),
  run: "/usr/bin/hello > /greeting.txt",
  cmd: ["cat", "/greeting.txt"],
});
`,
    );
    // A store of its own: the base's layers must come from the registry, not from the first build.
    const otherStore = userDir(user.name, "bases-store2");
    t.after(() => rmSync(otherStore, { recursive: true, force: true }));
    const mstage = mstageAs(user.name, second, otherStore);
    expectOk(await mstage(["up", "--progress", "plain"]), "up on external bases");
    const layout = join(second, "oci");

    await t.test("an image() base is pulled, pinned in images.lock and named in the annotations", async (tt) => {
      const lock = JSON.parse(readFileSync(join(second, "images.lock"), "utf8")) as { images: Record<string, string> };
      assert.equal(lock.images[ref], pushed);
      const manifest = JSON.parse(
        readFileSync(join(layout, "blobs/sha256", layoutRefs(layout)["pulled"]!.slice(7)), "utf8"),
      ) as { layers: unknown[]; annotations: Record<string, string> };
      assert.equal(manifest.annotations["org.opencontainers.image.base.name"], ref);
      assert.equal(manifest.annotations["org.opencontainers.image.base.digest"], pushed);
      assert.equal(manifest.layers.length, 3, "the base's two layers, reused, plus this stage's");
      const cfg = skopeoInspect(layout, "pulled", true) as { config: { Cmd: string[] } };
      assert.deepEqual(cfg.config.Cmd, ["/usr/bin/hello"], "cmd is inherited from the base");
      const bundle = unpack(layout, "pulled");
      tt.after(() => rmSync(bundle, { recursive: true, force: true }));
      assert.equal(runBundle(bundle).stdout.trim(), "Hello from the up test");
      assert.equal(readFileSync(join(bundle, "rootfs/extra-seen.txt"), "utf8"), "extra\n");
    });

    await t.test("an oci() base is read from another project's layout", async (tt) => {
      const bundle = unpack(layout, "layout");
      tt.after(() => rmSync(bundle, { recursive: true, force: true }));
      assert.equal(runBundle(bundle).stdout.trim(), "Hello from the up test");
    });

    await t.test("with the tag pinned, a second up and a config-only change need no registry", async () => {
      await registry.stop();
      const r = expectOk(await mstage(["up"]), "second up");
      assert.match(r.stdout, /0 built, 2 cached/);
      const file = join(second, "images.ts");
      writeAs(user.name, file, readFileSync(file, "utf8").replace('run: "cat /etc/extra.txt > /extra-seen.txt",', 'run: "cat /etc/extra.txt > /extra-seen.txt",\n  cmd: ["cat", "/extra-seen.txt"],'));
      const c = expectOk(await mstage(["up", "--progress", "plain"]), "config-only up without the registry");
      assert.match(c.stdout, /0 built, 1 cached, 1 config only/);
      const cfg = skopeoInspect(layout, "pulled", true) as { config: { Cmd: string[] } };
      assert.deepEqual(cfg.config.Cmd, ["cat", "/extra-seen.txt"]);
    });
  });
}

