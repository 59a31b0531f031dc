// The plan-bases fixture with real bases for plan tests that need a built state: an OCI layout of
// busybox at ./layout, a busybox tar at ./rootfs/rootfs.tar, and docker.io served by a loopback
// docker-registry that a registries.conf names as its mirror. Its debian() base is the init
// starter's, kept in rootfs.ts's debianStore() (made once per machine and user).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RegistryClient, pushImage } from "@mstage/runtime";
import { copyFixture } from "./mstage-cli.ts";
import { busyboxTar, makeTestImage, pushArgs, startRegistry, writeLayout, type RunningRegistry, type TestImage } from "./registry.ts";

/** A fresh copy of test/fixtures/plan-bases with its layout (`base:1.0` → `layoutImage`) and tarball written. */
export function planBasesProject(layoutImage: TestImage = makeTestImage({ label: "oci-base" })): string {
  const dir = copyFixture("plan-bases");
  writeLayout(join(dir, "layout"), { "base:1.0": layoutImage });
  mkdirSync(join(dir, "rootfs"));
  writeFileSync(join(dir, "rootfs", "rootfs.tar"), busyboxTar(layoutImage));
  return dir;
}

export interface DockerMirror {
  registry: RunningRegistry;
  /** CONTAINERS_REGISTRIES_CONF, for the CLI's environment. */
  env: Record<string, string>;
  /** Pushes `img` as docker.io/library/<repoTag>, e.g. "golang:1.22". */
  push(repoTag: string, img: TestImage): Promise<void>;
  stop(): Promise<void>;
}

/** A loopback registry that registries.conf makes the mirror of docker.io. */
export async function startDockerMirror(): Promise<DockerMirror> {
  const registry = await startRegistry();
  const conf = join(registry.dir, "registries.conf");
  writeFileSync(conf, `[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "${registry.host}"\n`);
  const client = new RegistryClient();
  return {
    registry,
    env: { CONTAINERS_REGISTRIES_CONF: conf },
    push: async (repoTag, img) => {
      await pushImage({ ...pushArgs(img, `${registry.host}/library/${repoTag}`), client });
    },
    stop: async () => {
      await client.close();
      await registry.stop();
    },
  };
}
