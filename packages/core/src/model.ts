// The data model shared by core, runtime and cli: what `stage()` and the base/source helpers
// produce after validation. User-facing option types (with TSDoc) live in api/; these are the
// normalised forms every other module reads.

import type { SourceLocation } from "./errors.ts";

/**
 * Owner of copied files: "user", "user:group", "uid" or "uid:gid". Names are looked up in the
 * destination stage's /etc/passwd and /etc/group (BuildKit's `--chown`); a user without a group
 * gets its primary group from /etc/passwd, a uid without a gid the same number as gid.
 */
export type Owner = string;

export interface FileOptions {
  /**
   * Permission bits given to every copied file and directory (BuildKit's `--chmod`); default the
   * source's own, setuid/setgid/sticky bits included.
   * @example copy: { "/usr/local/bin/run": local("./run.sh", { mode: 0o755 }) }
   */
  mode?: number;
  /**
   * Owner given to every copied file and directory and to the directories created for them
   * (BuildKit's `--chown`): "user", "user:group", "uid" or "uid:gid", names resolved in the
   * destination stage's /etc/passwd and /etc/group. Default: `someStage.path()` keeps the owners the
   * files have in that stage; `local()` and `inline()` files belong to root (0:0).
   * @example copy: { "/home/app/config.json": local("./config.json", { owner: "app:app" }) }
   * @example copy: { "/srv/data/": build.path("/out/data", { owner: "1000:1000" }) }
   */
  owner?: Owner;
}

export type Source = LocalSource | StagePathSource | InlineSource | ArchiveSource | HttpSource | GitSource;

/** A file downloaded at build time and checked against its sha256 (BuildKit's `ADD --checksum=… URL`). */
export interface HttpSource extends FileOptions {
  readonly kind: "http";
  readonly url: string;
  /**
   * "sha256:<64 hex>": the download must have exactly these bytes; it is the source's key.
   * Absent: unpinned, accepted only with `--allow-unpinned` (then pinned in images.lock).
   */
  readonly sha256?: string;
}

/** A git checkout (BuildKit's `ADD https://…git#ref`), keyed by the commit `ref` resolves to, pinned in images.lock. */
export interface GitSource extends FileOptions {
  readonly kind: "git";
  /** As given: https://, http://, git://, ssh://, file:// or scp-like `git@host:path`. */
  readonly url: string;
  /** A branch, a tag or a full commit id; "HEAD" (the remote's default branch) when not given. */
  readonly ref: string;
  /** Keep the `.git` directory in the checkout (BuildKit's `--keep-git-dir`); default false. */
  readonly keepGitDir: boolean;
}

export interface LocalSource extends FileOptions {
  readonly kind: "local";
  /** As written by the user: relative to the directory of `images.ts`, or absolute. */
  readonly path: string;
  /** gitignore-style patterns, relative to `path`. */
  readonly exclude: readonly string[];
  /** BuildKit's anchored include patterns (moby/patternmatcher), relative to `path`: only what they match is copied; empty: everything. */
  readonly include?: readonly string[];
}

export interface StagePathSource extends FileOptions {
  readonly kind: "stage-path";
  readonly stage: Stage;
  /** Absolute path inside the other stage's result. */
  readonly path: string;
}

export interface InlineSource extends FileOptions {
  readonly kind: "inline";
  readonly text: string;
}

/** A tar (plain, gzip, bzip2, xz or zstd) extracted into the destination directory (Docker's `ADD x.tar.gz /dst/`). */
export interface ArchiveSource {
  readonly kind: "archive";
  readonly source: LocalSource | StagePathSource;
  /** Extracted entries keep the tar's own owners and modes; options are not taken. */
  readonly mode?: undefined;
  readonly owner?: undefined;
}

export type Base = ScratchBase | ImageBase | StageBase | OciBase | TarballBase | DebianBase;

export interface ScratchBase {
  readonly kind: "scratch";
}
export interface ImageBase {
  readonly kind: "image";
  /** As written; normalised (docker.io/library/…) by the registry layer. */
  readonly ref: string;
  readonly platform?: string;
}
export interface StageBase {
  readonly kind: "stage";
  readonly stage: Stage;
}
export interface OciBase {
  readonly kind: "oci";
  /** OCI image layout directory, relative to `images.ts` or absolute. */
  readonly layout: string;
  /** `org.opencontainers.image.ref.name` in the layout's index; default: the only manifest. */
  readonly ref?: string;
}
export interface TarballBase {
  readonly kind: "tarball";
  readonly source: LocalSource | StagePathSource;
}
export interface DebianBase {
  readonly kind: "debian";
  readonly suite: string;
  readonly packages: readonly string[];
  readonly mirror?: string;
  readonly variant?: string;
  /** Set by the graph from its stage's platform: the architecture mmdebstrap installs. */
  readonly platform?: string;
}

export interface Bind {
  /** Absolute path inside the sandbox. */
  readonly target: string;
  /** As written: relative to `images.ts` or absolute. */
  readonly host: string;
  readonly readonly: boolean;
}

/** A normalised `healthcheck`: Docker's HealthConfig with durations in nanoseconds. */
export interface Healthcheck {
  /** ["CMD-SHELL", script], ["CMD", ...argv] or ["NONE"]. */
  readonly test: readonly string[];
  readonly interval?: number;
  readonly timeout?: number;
  readonly startPeriod?: number;
  readonly startInterval?: number;
  readonly retries?: number;
}

/** A path of another stage's result mounted read-only into `run` (BuildKit `--mount=type=bind,from=`). */
export interface StageBind {
  /** Absolute path inside the sandbox. */
  readonly target: string;
  readonly from: StagePathSource;
}

export type SecretSource = { readonly env: string } | { readonly file: string };

/**
 * Where a stage made by a frontend came from (`dockerfile()`, `stacker()`): plan names the line
 * ("Dockerfile:7 RUN changed") and the build args in scope ("ARG VERSION changed"). Not in the key.
 */
export interface StageOrigin {
  /** The file as shown in reasons, relative to images.ts: "Dockerfile", "app/stacker.yaml". */
  readonly file: string;
  readonly line: number;
  /** "RUN", "COPY", … or a stacker key. */
  readonly instruction: string;
  /** Build args the step sees, by name. */
  readonly args?: Readonly<Record<string, string>>;
}

/** A stage's spec after validation and defaults. Field order here is the canonical order. */
export interface StageSpec {
  readonly from: Base;
  /** Applied in order, before `run`. */
  readonly copy: ReadonlyArray<readonly [dest: string, source: Source]>;
  readonly run: readonly string[];
  readonly shell: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly workdir?: string;
  readonly user?: string;
  readonly runAs?: string;
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  /** One "port/proto" each; ranges are expanded. */
  readonly expose: readonly string[];
  readonly healthcheck?: Healthcheck;
  /** ONBUILD triggers, as written. */
  readonly onBuild?: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** A directory of another stage's result whose files become labels when the stage builds. */
  readonly labelsFrom?: StagePathSource;
  readonly volumes: readonly string[];
  readonly stopSignal?: string;
  readonly annotations: Readonly<Record<string, string>>;
  readonly network: "host" | "none";
  readonly binds: readonly Bind[];
  /** `binds` whose source is another stage's path; that stage is a dependency. */
  readonly stageBinds: readonly StageBind[];
  /** tmpfs mounts of `run` (BuildKit `--mount=type=tmpfs`): empty, never in the layer. */
  readonly tmpfs: readonly string[];
  /** target → cache id */
  readonly caches: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, SecretSource>>;
  readonly squash: boolean;
  /** Layer compression of this stage's outputs; absent means gzip (or what `up --compression` says). */
  readonly compression?: "gzip" | "zstd";
  readonly tags: readonly string[];
  /**
   * "os/arch[/variant]" (canonical spelling) or "host". Always a concrete platform on the
   * per-platform instances the graph builds (see instances.ts).
   */
  readonly platform?: string;
  readonly origin?: StageOrigin;
  /** The platforms an exported stage is built for, canonical spelling; its ref is an image index. */
  readonly platforms?: readonly string[];
}

/** What a stage's spec function is given: the platform the stage is being built for. */
export interface TargetPlatform {
  /** "linux/arm64" */
  readonly platform: string;
  /** "linux" (Go's GOOS) */
  readonly os: string;
  /** "amd64", "arm64", "arm" (Go's GOARCH, OCI's architecture) */
  readonly arch: string;
  /** "v7" for linux/arm/v7 */
  readonly variant?: string;
}

/** Recognised by brand (Symbol.for), never by instanceof: a second copy of the package still works. */
export const STAGE_BRAND: unique symbol = Symbol.for("mstage.stage") as never;

export interface Stage {
  readonly [STAGE_BRAND]: true;
  readonly name: string;
  readonly spec: StageSpec;
  /** Where `stage()` was called, for errors. */
  readonly definedAt?: SourceLocation;
  /**
   * A file or directory from this stage's result, to copy into another stage or use as a tarball.
   * @example copy: { "/bin/hello": build.path("/out/hello", { mode: 0o755 }) }
   */
  path(path: string, options?: FileOptions): StagePathSource;
  /**
   * The spec for one target platform: a stage defined with a function (`stageFor(name, (t) => ({…}))`)
   * calls it with that platform; any other stage returns `spec`.
   */
  specFor(target: string): StageSpec;
  /** On the per-platform instances the graph builds: the stage as `images.ts` defined it. */
  readonly definition?: Stage;
}

export function isStage(x: unknown): x is Stage {
  return typeof x === "object" && x !== null && (x as Record<symbol, unknown>)[STAGE_BRAND] === true;
}
