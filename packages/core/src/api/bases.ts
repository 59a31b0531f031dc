// Bases: what a stage starts from. A Stage itself is also a base (`from: build`).
import { locatedError } from "../errors.ts";
import type { DebianBase, FileOptions, ImageBase, LocalSource, OciBase, ScratchBase, StagePathSource, TarballBase } from "../model.ts";
import type { SourceLocation } from "../errors.ts";
import { baseStage } from "./stage.ts";
import { BASE_BRAND, branded, describe, isSource } from "./brand.ts";
import { callerLocation } from "./location.ts";

/** Options of `image()`. */
export interface ImageOptions {
  /**
   * The platform to pull from a multi-platform image; default the stage's platform (the host's).
   * @example image("docker.io/library/alpine:3.20", { platform: "linux/arm64" })
   */
  platform?: string;
}

/** Options of `debian()`. */
export interface DebianOptions {
  /**
   * The Debian release to install.
   * @example debian({ suite: "bookworm" })
   */
  suite: string;
  /**
   * Packages installed on top of the variant's set. Their resolved versions are pinned in
   * `images.lock`.
   * @example debian({ suite: "bookworm", packages: ["ca-certificates", "curl"] })
   */
  packages?: string[];
  /**
   * The Debian mirror; default http://deb.debian.org/debian.
   * @example debian({ suite: "bookworm", mirror: "http://ftp.de.debian.org/debian" })
   */
  mirror?: string;
  /**
   * mmdebstrap's variant; default "minbase" (essential packages plus apt).
   * @example debian({ suite: "bookworm", variant: "essential" })
   */
  variant?: string;
}

/** What `image()` and `oci()` return: a base, whose files can also be bound or copied with `path()`. */
export interface BaseWithPaths {
  /**
   * A file or directory of this image, as it is (nothing run on it): for `binds` (BuildKit's
   * `RUN --mount=type=bind,from=image`) or `copy` (`COPY --from=image`), without writing a stage
   * for the image. mstage adds a build-only stage named after the image ("base.…") for it.
   * @example binds: { "/toolchain": image("docker.io/library/golang:1.22").path("/usr/local/go") }
   * @example copy: { "/etc/ssl/certs/": image("docker.io/library/alpine:3.20").path("/etc/ssl/certs") }
   */
  path(path: string, options?: FileOptions): StagePathSource;
}

/** Adds the non-enumerable `path()` (the base stays plain data), then brands and freezes. */
function withPaths<T extends ImageBase | OciBase>(base: T, at: SourceLocation | undefined): T & BaseWithPaths {
  Object.defineProperty(base, "path", {
    value: (path: string, options?: FileOptions) => baseStage(base, at).path(path, options),
    enumerable: false,
  });
  return branded(BASE_BRAND, base) as T & BaseWithPaths;
}

const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;
const SUITE = /^[a-z][a-z0-9.-]*$/;
const PACKAGE = /^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$/;

/**
 * An image in a registry. Short names resolve like Docker's (`golang:1.22` is
 * `docker.io/library/golang:1.22`); a tag is pinned to a digest in `images.lock` on first use.
 * @example from: image("docker.io/library/golang:1.22")
 * @example from: image("alpine@sha256:4bcff63911fcb4448bd4fdacec207030997caf25e9bea4045fa6c8c44de311d1")
 * @example binds: { "/go": image("docker.io/library/golang:1.22").path("/usr/local/go") }
 */
export function image(ref: string, options: ImageOptions = {}): ImageBase & BaseWithPaths {
  const at = callerLocation(image);
  if (typeof ref !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$/.test(ref)) {
    throw locatedError(at, `image(): ${describe(ref)} is not an image reference like "docker.io/library/alpine:3.20"`);
  }
  if (typeof options !== "object" || options === null) throw locatedError(at, `image(): options must be an object`);
  for (const key of Object.keys(options)) {
    if (key !== "platform") throw locatedError(at, `image(): unknown option "${key}"; allowed: platform`);
  }
  if (options.platform !== undefined && (typeof options.platform !== "string" || !PLATFORM.test(options.platform))) {
    throw locatedError(at, `image(): "platform" must look like "linux/amd64", got ${describe(options.platform)}`);
  }
  return withPaths(
    {
      kind: "image" as const,
      ref,
      ...(options.platform ? { platform: options.platform } : {}),
    },
    at,
  );
}

/**
 * An empty filesystem. It has no shell: a stage on `scratch()` can `copy` but cannot `run` unless
 * it copies a shell in and sets `shell`.
 * @example export const hello = stage("hello", { from: scratch(), copy: { "/hello": build.path("/out/hello") } })
 */
export function scratch(): ScratchBase {
  return branded(BASE_BRAND, { kind: "scratch" as const });
}

/**
 * An image in a local OCI image layout directory (relative to `images.ts` or absolute).
 * @param ref the `org.opencontainers.image.ref.name` to use; default the layout's only image.
 * @example from: oci("./vendor/base-oci", "base:1.0")
 * @example copy: { "/etc/os-release": oci("./vendor/base-oci", "base:1.0").path("/etc/os-release") }
 */
export function oci(layout: string, ref?: string): OciBase & BaseWithPaths {
  const at = callerLocation(oci);
  if (typeof layout !== "string" || layout === "") {
    throw locatedError(at, `oci(): the layout directory must be a non-empty string, got ${describe(layout)}`);
  }
  if (ref !== undefined && (typeof ref !== "string" || ref === "")) {
    throw locatedError(at, `oci(): ref must be a non-empty string, got ${describe(ref)}`);
  }
  return withPaths({ kind: "oci" as const, layout, ...(ref !== undefined ? { ref } : {}) }, at);
}

/**
 * A root filesystem from a tar archive (plain or gzip), from the host or another stage. Nothing is
 * run to unpack it; its files and this stage's changes become one layer.
 * @example from: tarball(local("./rootfs.tar.gz"))
 * @example from: tarball(rootfs.path("/out/rootfs.tar"))
 */
export function tarball(source: LocalSource | StagePathSource): TarballBase {
  const at = callerLocation(tarball);
  if (!isSource(source) || (source.kind !== "local" && source.kind !== "stage-path")) {
    throw locatedError(at, `tarball(): the source must be local(...) or someStage.path(...), got ${describe(source)}`);
  }
  return branded(BASE_BRAND, { kind: "tarball" as const, source });
}

/**
 * A Debian root filesystem made from packages with rootless mmdebstrap, without any base image.
 * Keyed by its arguments plus the package versions pinned in `images.lock`.
 * @example from: debian({ suite: "bookworm", packages: ["ca-certificates"] })
 */
export function debian(options: DebianOptions): DebianBase {
  const at = callerLocation(debian);
  if (typeof options !== "object" || options === null) {
    throw locatedError(at, `debian(): expects { suite, packages?, mirror?, variant? }, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!["suite", "packages", "mirror", "variant"].includes(key)) {
      throw locatedError(at, `debian(): unknown option "${key}"; allowed: suite, packages, mirror, variant`);
    }
  }
  const { suite, packages = [], mirror, variant = "minbase" } = options;
  if (typeof suite !== "string" || !SUITE.test(suite)) {
    throw locatedError(at, `debian(): "suite" must be a release name like "bookworm", got ${describe(suite)}`);
  }
  if (!Array.isArray(packages) || packages.some((p) => typeof p !== "string" || !PACKAGE.test(p))) {
    throw locatedError(at, `debian(): "packages" must be an array of Debian package names, got ${describe(packages)}`);
  }
  if (mirror !== undefined && (typeof mirror !== "string" || !/^https?:\/\//.test(mirror))) {
    throw locatedError(at, `debian(): "mirror" must be an http(s) URL, got ${describe(mirror)}`);
  }
  if (typeof variant !== "string" || !/^[a-z]+$/.test(variant)) {
    throw locatedError(at, `debian(): "variant" must be an mmdebstrap variant like "minbase", got ${describe(variant)}`);
  }
  return branded(BASE_BRAND, {
    kind: "debian" as const,
    suite,
    packages: Object.freeze([...new Set(packages)].sort()),
    ...(mirror !== undefined ? { mirror } : {}),
    variant,
  });
}
