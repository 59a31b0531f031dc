// The differential test (DESIGN §7): each Dockerfile of copy-scenarios.ts built with `buildah bud`
// and its images.ts equivalent built with mstage, on the same offline base, must give the same
// image: every entry (path, type, mode, owner, content, xattrs, hardlink group; mtimes excepted) and
// the config fields a Dockerfile sets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildahBud, buildahUnavailable, makeFeatureBase } from "./helpers/buildah.ts";
import { SCENARIOS, scenarioImagesTs, writeContext } from "./helpers/copy-scenarios.ts";
import { entryLines, imageEntries, readImage } from "./helpers/image-entries.ts";
import { expectOk, mstageAs, tool } from "./up-harness.ts";

/** What a buildah RUN leaves as empty mount points when the base lacks them; not the step's doing. */
const RUN_MOUNTPOINTS = new Set(["etc/hosts", "etc/resolv.conf", "etc/hostname", "proc", "dev", "sys", "run"]);

const CONFIG_FIELDS = ["Env", "Entrypoint", "Cmd", "WorkingDir", "User", "ExposedPorts", "Volumes", "StopSignal", "Labels"] as const;

function configFields(config: any): Record<string, unknown> {
  const c = { ...(config.config ?? {}) };
  if (c.Labels) {
    delete c.Labels["io.buildah.version"];
    if (Object.keys(c.Labels).length === 0) delete c.Labels;
  }
  return Object.fromEntries(CONFIG_FIELDS.filter((f) => c[f] !== undefined && c[f] !== "").map((f) => [f, c[f]]));
}

test("mstage builds the same images as buildah bud from the same Dockerfiles", { timeout: 5 * 60_000 }, async (t) => {
  const why = buildahUnavailable() ?? (tool("umoci") ? undefined : "umoci is missing: run .ci/setup");
  if (why) return t.skip(why);
  // buildah takes the layout path as an image name in FROM: it must be lowercase.
  const dir = join(tmpdir(), `mstage-copy-buildah-${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(dir);
  if (!process.env.KEEP) t.after(() => rmSync(dir, { recursive: true, force: true }));
  const base = join(dir, "base");
  makeFeatureBase(base);
  const project = join(dir, "project");
  mkdirSync(project);
  writeContext(project);
  writeFileSync(join(project, "images.ts"), scenarioImagesTs(base));
  const store = join(dir, "store");
  mkdirSync(store);
  const started = Date.now();
  expectOk(await mstageAs("root", project, store)(["up", "-q", "--output", `oci:${join(dir, "mstage")}`]), "mstage up");
  t.diagnostic(`mstage up of ${SCENARIOS.length} scenarios: ${Date.now() - started} ms`);

  // The same Dockerfiles through dockerfile(): each built as written, in its own context.
  for (const s of SCENARIOS) {
    const ctx = join(dir, `ctx-${s.name}`);
    mkdirSync(ctx);
    writeContext(ctx);
    writeFileSync(join(ctx, "Dockerfile"), s.dockerfile(base));
  }
  writeFileSync(
    join(dir, "images.ts"),
    `import { dockerfile } from "mstage";\n` + SCENARIOS.map((s, i) => `export const s${i} = dockerfile("./ctx-${s.name}/Dockerfile", { name: "${s.name}" });\n`).join(""),
  );
  const frontend = Date.now();
  expectOk(await mstageAs("root", dir, store)(["up", "-q", "--output", `oci:${join(dir, "dockerfile")}`]), "mstage up (dockerfile())");
  t.diagnostic(`mstage up of the ${SCENARIOS.length} Dockerfiles with dockerfile(): ${Date.now() - frontend} ms`);

  for (const s of SCENARIOS) {
    await t.test(s.name, () => {
      const ctx = join(dir, `ctx-${s.name}`);
      buildahBud(ctx, join(dir, "buildah"), s.name);

      const ours = imageEntries(join(dir, "mstage"), s.name);
      const theirs = imageEntries(join(dir, "buildah"), s.name);
      const skip = (p: string) => !!s.runArtifacts && RUN_MOUNTPOINTS.has(p) && !ours.has(p);
      assert.deepEqual(entryLines(ours, skip), entryLines(theirs, skip));
      assert.deepEqual(configFields(readImage(join(dir, "mstage"), s.name).config), configFields(readImage(join(dir, "buildah"), s.name).config));
    });
    await t.test(`${s.name}, its Dockerfile through dockerfile()`, () => {
      const ours = imageEntries(join(dir, "dockerfile"), s.name);
      const theirs = imageEntries(join(dir, "buildah"), s.name);
      const skip = (p: string) => !!s.runArtifacts && RUN_MOUNTPOINTS.has(p) && !ours.has(p);
      assert.deepEqual(entryLines(ours, skip), entryLines(theirs, skip));
      assert.deepEqual(configFields(readImage(join(dir, "dockerfile"), s.name).config), configFields(readImage(join(dir, "buildah"), s.name).config));
    });
  }
});
