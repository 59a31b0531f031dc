// The frontends for another platform through the built CLI, on the offline two-platform busybox
// base: dockerfile() with BuildKit's cross-compiling pattern (`FROM --platform=$BUILDPLATFORM … AS
// build`, the TARGET*/BUILD* args, a final stage for the target), the build stage native and the
// final stage's RUN through qemu; and a stacker layer with `arch: arm64` and `build_env`. The
// images.ts `mstage convert` writes for each builds the same image.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { arm64Emulation, multiarchUnavailable, writeMultiarchLayout } from "./helpers/multiarch.ts";
import { expectOk, mstageAs, runBundle, sameImage, skopeoInspect, testUsers, tool, unpack, userDirsFor, writeAs } from "./up-harness.ts";

const missing = ["skopeo", "umoci", "runc"].filter((t) => !tool(t));
const skip = multiarchUnavailable() ?? arm64Emulation() ?? (missing.length ? `missing ${missing.join(", ")}: run .ci/setup` : undefined);

const DOCKERFILE = `# The build stage runs on the build machine and reads the target from the args.
FROM --platform=$BUILDPLATFORM oci:./base:busybox AS build
ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH
RUN echo "build on $BUILDPLATFORM ($BUILDARCH, $(uname -m)) for $TARGETPLATFORM $TARGETOS/$TARGETARCH [$TARGETVARIANT]" > /log

FROM oci:./base:busybox
COPY --from=build /log /log
RUN echo "final [$TARGETARCH] on $(uname -m)" >> /log
ARG TARGETARCH
RUN echo "declared [$TARGETARCH]" >> /log
CMD ["/bin/cat", "/log"]
`;

const EXPECTED = [
  "build on linux/amd64 (amd64, x86_64) for linux/arm64 linux/arm64 []",
  "final [] on aarch64",
  "declared [arm64]",
  "",
].join("\n");

test("dockerfile({ platform }) builds BuildKit's cross-compiling pattern: a native build stage, an arm64 final stage through qemu, the platform args scoped as BuildKit scopes them", { skip, timeout: 5 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const [dir, store] = userDirsFor(t, user, "df-platform", "df-platform-store");
  writeMultiarchLayout(join(dir, "base"));
  writeAs(user, join(dir, "Dockerfile"), DOCKERFILE);
  writeAs(user, join(dir, "images.ts"), `import { dockerfile } from "mstage";\nexport const app = dockerfile("./Dockerfile", { name: "app", platform: "linux/arm64" });\n`);
  const mstage = mstageAs(user, dir, store);
  expectOk(await mstage(["up", "--progress", "plain"]), "up");

  const config = skopeoInspect(join(dir, "oci"), "app", true) as { architecture: string; os: string; config: { Cmd: string[] } };
  assert.equal(config.architecture, "arm64");
  assert.equal(config.os, "linux");
  const bundle = unpack(join(dir, "oci"), "app");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  assert.equal(readFileSync(join(bundle, "rootfs/log"), "utf8"), EXPECTED);
  const r = runBundle(bundle);
  assert.equal(r.code, 0, `runc run of the arm64 image: ${r.stderr}`);
  assert.equal(r.stdout, EXPECTED);

  // convert pins each stage's platform, so its images.ts builds the same image.
  expectOk(await mstage(["convert", "Dockerfile", "--name", "app", "--platform", "linux/arm64", "-o", "converted.ts"]), "convert");
  const converted = readFileSync(join(dir, "converted.ts"), "utf8");
  assert.match(converted, /platform: "linux\/amd64"/);
  assert.match(converted, /platform: "linux\/arm64"/);
  const [other] = userDirsFor(t, user, "df-platform-convert");
  writeMultiarchLayout(join(other, "base"));
  writeAs(user, join(other, "images.ts"), converted);
  expectOk(await mstageAs(user, other, store)(["up", "--progress", "plain"]), "up of the converted images.ts");
  sameImage(join(dir, "oci"), join(other, "oci"), "app");
});

const STACKER = `build:
  from:
    type: oci
    url: ./base:busybox
  arch: arm64
  build_env:
    GREETING: hello from
  run: echo "$GREETING $STACKER_LAYER_NAME on $(uname -m)" > /log
  cmd: /bin/cat /log
`;

test("a stacker layer with arch: arm64 is built from the base's arm64 image through qemu, its build_env seen by run and absent from the config", { skip, timeout: 5 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const [dir, store] = userDirsFor(t, user, "stacker-arch", "stacker-arch-store");
  writeMultiarchLayout(join(dir, "base"));
  writeAs(user, join(dir, "stacker.yaml"), STACKER);
  writeAs(user, join(dir, "images.ts"), `import { stacker } from "mstage";\nexport const images = stacker("./stacker.yaml");\n`);
  const mstage = mstageAs(user, dir, store);
  expectOk(await mstage(["up", "--progress", "plain"]), "up");
  const config = skopeoInspect(join(dir, "oci"), "build", true) as { architecture: string; config: { Env?: string[] } };
  assert.equal(config.architecture, "arm64");
  assert.ok(!(config.config.Env ?? []).some((e) => e.startsWith("GREETING=")), "build_env is not in the image's environment");
  const bundle = unpack(join(dir, "oci"), "build");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  assert.equal(readFileSync(join(bundle, "rootfs/log"), "utf8"), "hello from build on aarch64\n");

  expectOk(await mstage(["convert", "stacker.yaml", "-o", "converted.ts"]), "convert");
  const [other] = userDirsFor(t, user, "stacker-arch-convert");
  writeMultiarchLayout(join(other, "base"));
  writeAs(user, join(other, "images.ts"), readFileSync(join(dir, "converted.ts"), "utf8"));
  expectOk(await mstageAs(user, other, store)(["up", "--progress", "plain"]), "up of the converted images.ts");
  sameImage(join(dir, "oci"), join(other, "oci"), "build");
});
