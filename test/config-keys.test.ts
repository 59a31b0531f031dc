// The Dockerfile config instructions images.ts had no key for (issue 10, item 11): HEALTHCHECK,
// ONBUILD, shell-form CMD/ENTRYPOINT and EXPOSE ranges, written into the image config as Docker
// writes them, and config-only: changing one runs nothing. Compared with buildah's Docker-format
// config where buildah agrees with Docker (it keeps EXPOSE ranges unexpanded; Docker does not).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildahDockerConfig, buildahUnavailable, makeFeatureBase } from "./helpers/buildah.ts";
import { readImage } from "./helpers/image-entries.ts";
import { expectOk, projectWith, testUsers, writeAs } from "./up-harness.ts";

const HEALTH = `{ test: "wget -q -O- localhost:8080 || exit 1", interval: "5s", timeout: "3s", startPeriod: "1s", retries: 4 }`;

function imagesTs(interval: string): string {
  return `import { inline, scratch, stage, type StageOptions } from "mstage";
const common: StageOptions = {
  from: scratch(),
  copy: { "/etc/motd": inline("hi\\n") },
  cmd: "echo hi",
  entrypoint: "exec foo",
  expose: ["8000-8002/tcp", "53/udp"],
  healthcheck: ${HEALTH.replace('"5s"', JSON.stringify(interval))},
  onBuild: ["RUN echo onbuild"],
  stopSignal: "SIGINT",
};
export const svc = stage("svc", { ...common, shell: ["/bin/sh", "-ec"] });
// The same in the default shell: buildah 1.28 wraps shell-form CMD in /bin/sh -c whatever SHELL says.
export const plain = stage("plain", common);
`;
}

test("healthcheck, onBuild, shell-form cmd/entrypoint and expose ranges reach the image config", { timeout: 3 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const { project, mstage } = projectWith(t, user, "config-keys", imagesTs("5s"));
  expectOk(await mstage(["up", "-q"]), "up");
  const config = readImage(join(project, "oci"), "svc").config.config;
  const expected = {
    Cmd: ["/bin/sh", "-ec", "echo hi"],
    Entrypoint: ["/bin/sh", "-ec", "exec foo"],
    Healthcheck: { Test: ["CMD-SHELL", "wget -q -O- localhost:8080 || exit 1"], Interval: 5e9, Timeout: 3e9, StartPeriod: 1e9, Retries: 4 },
    OnBuild: ["RUN echo onbuild"],
    StopSignal: "SIGINT",
  };
  assert.deepEqual(
    { Cmd: config.Cmd, Entrypoint: config.Entrypoint, Healthcheck: config.Healthcheck, OnBuild: config.OnBuild, StopSignal: config.StopSignal },
    expected,
  );
  assert.deepEqual(Object.keys(config.ExposedPorts).sort(), ["53/udp", "8000/tcp", "8001/tcp", "8002/tcp"]);

  await t.test("a changed healthcheck is a config-only change", async () => {
    writeAs(user, join(project, "images.ts"), imagesTs("10s"));
    const plan = expectOk(await mstage(["plan"]), "plan");
    assert.match(plan.stdout, /~ svc\s+config only: healthcheck/);
  });

  await t.test("buildah writes the same Docker config from the same Dockerfile", (tt) => {
    const why = buildahUnavailable();
    if (why) return tt.skip(why);
    const dir = join(tmpdir(), `mstage-config-keys-${process.pid}`);
    mkdirSync(join(dir, "ctx"), { recursive: true });
    tt.after(() => rmSync(dir, { recursive: true, force: true }));
    makeFeatureBase(join(dir, "base"));
    writeFileSync(join(dir, "ctx/Dockerfile"), `FROM oci:${join(dir, "base")}:base
CMD echo hi
ENTRYPOINT exec foo
HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=4 CMD wget -q -O- localhost:8080 || exit 1
ONBUILD RUN echo onbuild
STOPSIGNAL SIGINT
`);
    const theirs = buildahDockerConfig(join(dir, "ctx")) as Record<string, unknown>;
    const ours = readImage(join(project, "oci"), "plain").config.config;
    const pick = (c: Record<string, unknown>) => ({ Cmd: c.Cmd, Entrypoint: c.Entrypoint, Healthcheck: c.Healthcheck, OnBuild: c.OnBuild, StopSignal: c.StopSignal });
    assert.deepEqual(pick(ours), pick(theirs));
    assert.deepEqual(ours.Cmd, ["/bin/sh", "-c", "echo hi"]);
  });
});
