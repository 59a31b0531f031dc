// registries.conf the way podman reads it, through the built CLI and a loopback docker-registry:
// a short name resolved by an [aliases] entry of a registries.conf.d drop-in, to a registry that
// another drop-in mirrors (the main file sets no search registries at all), with plan saying
// which alias and which mirror served the base; and a Dockerfile FROM the same short name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { registryUnavailable, startRegistry } from "./helpers/registry.ts";
import { expectOk, mstageAs, skopeoInspect, testUsers, tool, userDirsFor } from "./up-harness.ts";

const skip = registryUnavailable() ?? (tool("skopeo") ? undefined : "skopeo is missing: run .ci/setup");

test("a short name goes through a drop-in's alias and another drop-in's mirror; plan names both files", { skip, timeout: 3 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const [dir, store] = userDirsFor(t, user, "regconf", "regconf-store");

  // The base, pushed to the loopback registry under the name the mirror serves.
  const push = join(dir, "push");
  mkdirSync(push);
  writeFileSync(join(push, "images.ts"), `import { inline, scratch, stage } from "mstage";\nexport const hello = stage("hello", { from: scratch(), copy: { "/hello": inline("hi\\n") }, cmd: ["/hello"], tags: ["${reg.host}/team/hello:1"] });\n`);
  expectOk(await mstageAs(user, push, store)(["up", "--push", "-q"]), "up --push of the base");

  const home = join(dir, "home");
  const dropIns = join(home, ".config", "containers", "registries.conf.d");
  mkdirSync(dropIns, { recursive: true });
  const main = join(dir, "registries.conf");
  writeFileSync(main, `unqualified-search-registries = []\n`);
  writeFileSync(join(dropIns, "50-alias.conf"), `[aliases]\n"hello" = "registry.invalid/team/hello"\n`);
  writeFileSync(join(dropIns, "60-mirror.conf"), `[[registry]]\nprefix = "registry.invalid"\n[[registry.mirror]]\nlocation = "${reg.host}"\n`);
  const project = join(dir, "project");
  mkdirSync(project);
  writeFileSync(join(project, "Dockerfile"), `FROM hello:1\nLABEL from=dockerfile\n`);
  writeFileSync(
    join(project, "images.ts"),
    `import { dockerfile, image, stage } from "mstage";\n` +
      `export const app = stage("app", { from: image("hello:1"), labels: { from: "stage" } });\n` +
      `export const df = dockerfile("./Dockerfile", { name: "df" });\n`,
  );
  const env = { CONTAINERS_REGISTRIES_CONF: main, HOME: home };
  const mstage = mstageAs(user, project, store);
  const plan = expectOk(await mstage(["plan"], { env }), "plan");
  assert.match(plan.stderr, new RegExp(`hello:1 is registry\\.invalid/team/hello:1 by the short-name alias in ${join(dropIns, "50-alias.conf")}`));
  assert.match(plan.stderr, new RegExp(`hello:1 resolved through mirror ${reg.host.replace(/\./g, "\\.")} \\(${join(dropIns, "60-mirror.conf")}\\)`));
  expectOk(await mstage(["up", "-q"], { env }), "up");
  const pushed = skopeoInspect(join(push, "oci"), "hello", true) as { rootfs: { diff_ids: string[] } };
  for (const ref of ["app", "df"]) {
    const img = skopeoInspect(join(project, "oci"), ref, true) as { rootfs: { diff_ids: string[] }; config: { Labels: Record<string, string> } };
    assert.deepEqual(img.rootfs.diff_ids, pushed.rootfs.diff_ids, `${ref} is built on the pushed base`);
  }

  // Without the alias drop-in the short name has nowhere to go (the main file sets no search
  // registries) once plan re-resolves what images.lock pinned.
  rmSync(join(dropIns, "50-alias.conf"));
  const refused = await mstage(["plan", "--refresh"], { env });
  assert.equal(refused.code, 1, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /hello:1 is a short name, and .*registries\.conf sets no unqualified-search-registries and no alias for it/);
});
