// `stage()`: validates a spec at once (like a Pulumi resource's constructor) and throws a
// StageError naming the stage, the key and the images.ts line; returns the normalised Stage.
import { posix } from "node:path";
import { StageError, type SourceLocation } from "../errors.ts";
import { STAGE_BRAND, isStage } from "../model.ts";
import { sha256Hex } from "../canonical.ts";
import type { ImageBase, OciBase } from "../model.ts";
import type { Base, Bind, FileOptions, Healthcheck, SecretSource, Source, Stage, StageBind, StageOrigin, StagePathSource, StageSpec, TargetPlatform } from "../model.ts";
import { canonicalPlatform, formatPlatform, hostPlatform, parsePlatform } from "../platform.ts";
import { didYouMean } from "../suggest.ts";
import { BASE_BRAND, SOURCE_BRAND, branded, describe, isBase, isSource } from "./brand.ts";
import { checkFileOptions, fileOptions } from "./sources.ts";
import { callerLocation } from "./location.ts";

/**
 * The spec of a stage: what it starts from, what it copies and runs, and the image config it
 * leaves. Every key but `from` is optional.
 */
export interface StageOptions {
  /**
   * What the stage starts from: `image(ref)`, `scratch()`, another stage, `oci(dir)`,
   * `tarball(source)` or `debian({...})`.
   * @example from: image("docker.io/library/golang:1.22")
   * @example from: build // continue from another stage's result
   */
  from: Base | Stage;
  /**
   * Files to put in the image: absolute destination → source, applied in order before `run`.
   * As in a Dockerfile's `COPY`: a destination ending in `/` is a directory the source goes into
   * (created with its parents when missing); a directory source copies its contents; symlinks on
   * the way are followed inside the image; an existing destination directory keeps its own owner
   * and mode.
   * @example copy: { "/usr/local/bin/": local("./tool") } // → /usr/local/bin/tool
   * @example copy: { "/src/main.go": local("./main.go"), "/bin/tool": tools.path("/out/tool") }
   */
  copy?: Record<string, Source>;
  /**
   * Shell script(s) run with `shell`, in order, in one sandbox session. Their changes become the
   * stage's layer.
   * @example run: "go build -o /out/hello ./main.go"
   * @example run: ["apt-get update", "apt-get install -y curl"]
   */
  run?: string | string[];
  /**
   * The command each `run` script is appended to; default `["/bin/sh", "-c"]`.
   * @example shell: ["/bin/bash", "-euo", "pipefail", "-c"]
   */
  shell?: string[];
  /**
   * Environment of `run` and of the image; inherited from the base like Docker's `ENV`.
   * @example env: { CGO_ENABLED: "0", GOFLAGS: "-trimpath" }
   */
  env?: Record<string, string>;
  /**
   * Working directory of `run` and of the image (absolute).
   * @example workdir: "/src"
   */
  workdir?: string;
  /**
   * The image's user, for containers and for the `run` of later stages on this one. Set after this
   * stage's own `run`, so a stage can create the user and switch to it.
   * @example user: "app"
   * @example user: "1000:1000"
   */
  user?: string;
  /**
   * The user of this stage's `run`; default the user inherited from the base (usually root).
   * @example runAs: "nobody"
   */
  runAs?: string;
  /**
   * The image's entrypoint (config only: changing it runs nothing). An array is exec form; a string
   * is shell form, run by the stage's `shell` as Docker's `ENTRYPOINT cmd` is.
   * @example entrypoint: ["/usr/bin/tini", "--"]
   * @example entrypoint: "exec /app/server --port $PORT" // → ["/bin/sh", "-c", "exec /app/server --port $PORT"]
   */
  entrypoint?: string | string[];
  /**
   * The image's default command (config only). An array is exec form; a string is shell form,
   * wrapped in the stage's `shell` as Docker's `CMD cmd` is.
   * @example cmd: ["/bin/hello"]
   * @example cmd: "echo $HOME" // → ["/bin/sh", "-c", "echo $HOME"]
   */
  cmd?: string | string[];
  /**
   * Ports the image listens on (config only): a number, "8080", "53/udp", or a range
   * "8000-8010/tcp", which is written as one port each, as Docker's `EXPOSE` does.
   * @example expose: [8080, "53/udp", "9000-9002"]
   */
  expose?: (number | string)[];
  /**
   * How a container of this image is checked (config only; Docker's `HEALTHCHECK`). `test` as a
   * string runs in the container's shell (`CMD-SHELL`), as an array it is exec form (`CMD`);
   * `"none"` turns off a check inherited from the base. Durations are Go-style strings ("30s",
   * "1m30s", "500ms"); unset ones are left to the runtime's defaults.
   * @example healthcheck: { test: "wget -q -O- http://localhost:8080/health || exit 1", interval: "30s", timeout: "3s", retries: 3 }
   * @example healthcheck: { test: ["/app/healthcheck"], startPeriod: "10s" }
   * @example healthcheck: "none"
   */
  healthcheck?: HealthcheckOptions | "none";
  /**
   * Dockerfile instructions recorded in the image config as triggers for builds that use this image
   * as their base (config only; Docker's `ONBUILD`). mstage itself does not run a base's triggers,
   * and, as Docker does, does not pass a base's triggers on to images built on it.
   * @example onBuild: ["COPY . /app/src", "RUN make -C /app/src"]
   */
  onBuild?: string[];
  /**
   * Image config labels (config only).
   * @example labels: { "org.opencontainers.image.source": "https://example.com/repo" }
   */
  labels?: Record<string, string>;
  /**
   * Labels made when the image is built (stacker's `generate_labels`): each file of this directory
   * in another stage's result is a label named like the file, its content the value. `labels`
   * win over them. Config only: the directory's stage is built first, and a change of it rewrites
   * this image's config, not its layer.
   * @example labelsFrom: stampLabels.path("/out/labels")
   */
  labelsFrom?: StagePathSource;
  /**
   * Volumes declared in the image config (config only; absolute paths).
   * @example volumes: ["/var/lib/data"]
   */
  volumes?: string[];
  /**
   * The signal that stops a container of this image (config only).
   * @example stopSignal: "SIGINT"
   */
  stopSignal?: string;
  /**
   * Manifest annotations of the output image (config only).
   * @example annotations: { "org.opencontainers.image.version": "1.0.0" }
   */
  annotations?: Record<string, string>;
  /**
   * Network of `run`: `"host"` (default) or `"none"` (loopback only).
   * @example network: "none"
   */
  network?: "host" | "none";
  /**
   * Host directories (relative to `images.ts` or absolute) or another stage's path mounted at a
   * target path during `run`, never part of the layer. Read-only by default, and then their
   * contents are part of the stage key; a writable host bind (`readonly: false`) means the stage is
   * never served from cache. `someStage.path(p)` mounts that stage's `p` read-only and makes the
   * stage a dependency (BuildKit's `RUN --mount=type=bind,from=stage,source=p`); for an image, make
   * a stage of it: `stage("tools", { from: image("…") }).path("/usr/bin")`.
   * @example binds: { "/src": "./src", "/out": { host: "./dist", readonly: false } }
   * @example binds: { "/deps": deps.path("/out/node_modules") }
   */
  binds?: Record<string, string | { host: string; readonly?: boolean } | StagePathSource>;
  /**
   * Empty tmpfs mounts during `run` (BuildKit's `RUN --mount=type=tmpfs`): what a step writes
   * there is never part of the layer or seen by a later stage.
   * @example tmpfs: ["/tmp", "/var/cache/apt"]
   */
  tmpfs?: string[];
  /**
   * Persistent cache directories (target → cache id) kept across builds and shared by stages using
   * the same id; never in the layer or the key (BuildKit's `--mount=type=cache`).
   * @example caches: { "/root/.cache/go-build": "go-build" }
   */
  caches?: Record<string, string>;
  /**
   * Secrets mounted at `/run/secrets/<id>` during `run`, from an environment variable or a host
   * file; never in the layer, the key, the logs or the state.
   * @example secrets: { npmrc: { file: "~/.npmrc" }, token: { env: "GITHUB_TOKEN" } }
   */
  secrets?: Record<string, { env: string } | { file: string }>;
  /**
   * Emit the whole image as a single layer.
   * @example squash: true
   */
  squash?: boolean;
  /**
   * How this exported stage's layers are compressed in its outputs and pushes: `"gzip"` (default;
   * deterministic, on every core) or `"zstd"` (`application/vnd.oci.image.layer.v1.tar+zstd`:
   * smaller and faster; podman, containerd ≥ 1.5 and skopeo read it, older Docker does not).
   * Layers of a pulled base keep the compression they came in. `up --compression` overrides it.
   * @example compression: "zstd"
   */
  compression?: "gzip" | "zstd";
  /**
   * References written for this exported stage (and pushed with `--push`).
   * @example tags: ["registry.example.com/hello:1.0", "registry.example.com/hello:latest"]
   */
  tags?: string[];
  /**
   * The platform to build for; default the host's, or, for a stage another stage reads from, that
   * stage's platform. `"host"` pins the stage to the build machine however it is used (cross-compile
   * in it, and read the target platform from the spec function's argument). A `run` for another
   * architecture goes through the kernel's binfmt_misc handlers (qemu-user-static).
   * @example platform: "linux/arm64"
   * @example platform: "host"
   */
  platform?: string;
  /**
   * Build this stage once per platform, with every stage it reads from that does not pin its own
   * `platform`; its ref in the outputs is an OCI image index of the per-platform images.
   * @example platforms: ["linux/amd64", "linux/arm64"]
   */
  platforms?: string[];
}

/** `healthcheck` of a stage (Docker's `HEALTHCHECK` options). */
export interface HealthcheckOptions {
  /**
   * The check: a string is run by the container's shell (`CMD-SHELL`), an array is exec form (`CMD`).
   * @example test: "curl -f http://localhost/ || exit 1"
   * @example test: ["/bin/healthcheck", "--quiet"]
   */
  test: string | string[];
  /**
   * Time between checks (Docker's default 30s).
   * @example interval: "10s"
   */
  interval?: string;
  /**
   * Time a check may take before it counts as failed (default 30s).
   * @example timeout: "3s"
   */
  timeout?: string;
  /**
   * Start-up time during which failures do not count (default 0s).
   * @example startPeriod: "1m"
   */
  startPeriod?: string;
  /**
   * Time between checks during the start period (Docker 25+; default 5s).
   * @example startInterval: "2s"
   */
  startInterval?: string;
  /**
   * Consecutive failures that make the container unhealthy (default 3).
   * @example retries: 5
   */
  retries?: number;
}

/**
 * A spec written as a function of the platform the stage is being built for: how per-platform values
 * (GOARCH, a download URL) reach the config.
 * @example stage("build", (t) => ({ platform: "host", from: golang, env: { GOARCH: t.arch }, run: "go build -o /out/app ." }))
 */
export type StageSpecFunction = (target: TargetPlatform) => StageOptions;

const KEYS: readonly (keyof StageOptions)[] = [
  "from", "copy", "run", "shell", "env", "workdir", "user", "runAs", "entrypoint", "cmd", "expose",
  "healthcheck", "onBuild", "labels", "labelsFrom", "volumes", "stopSignal", "annotations", "network", "binds", "tmpfs", "caches", "secrets", "squash",
  "compression", "tags", "platform", "platforms",
];

/** Stage names become image refs and file names: a lowercase OCI repository path component. */
const NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** Stage names become image references and tags (at most 128 characters in the distribution spec). */
const MAX_NAME_LENGTH = 128;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;
const TAG = /^[a-z0-9][a-z0-9._\-/:]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;

/** Stages defined while a config is being loaded, by name, for the duplicate check. */
let collection: Map<string, Stage> | undefined;
/** The loading config's directory and the files frontends read (watch mode watches them). */
let loading: { projectDir?: string; files: Set<string> } | undefined;

/**
 * Starts recording every stage `stage()` makes (the loader calls this around evaluating
 * `images.ts`); names must be unique within one collection. `end()` stops and returns them;
 * `files()` lists the files that `dockerfile()`/`stacker()` read meanwhile.
 */
export function beginStageCollection(options: { projectDir?: string } = {}): { end(): Stage[]; files(): string[] } {
  const mine = new Map<string, Stage>();
  const state = { projectDir: options.projectDir, files: new Set<string>() };
  collection = mine;
  loading = state;
  return {
    end() {
      if (collection === mine) collection = undefined;
      if (loading === state) loading = undefined;
      return [...mine.values()];
    },
    files: () => [...state.files],
  };
}

/** The directory of the images.ts being loaded, when the loader said; frontends resolve paths from it. */
export function loadingProjectDir(): string | undefined {
  return loading?.projectDir;
}

/** Records a file a frontend read while the config loads, so watch mode reloads when it changes. */
export function noteConfigFile(path: string): void {
  loading?.files.add(path);
}

class StageImpl implements Stage {
  readonly [STAGE_BRAND] = true as const;
  private readonly perTarget: Map<string, StageSpec>;
  constructor(
    readonly name: string,
    readonly spec: StageSpec,
    readonly definedAt: SourceLocation | undefined,
    private readonly make?: (target: string) => StageSpec,
    readonly definition?: Stage,
  ) {
    this.perTarget = new Map();
    Object.freeze(this);
  }

  specFor(target: string): StageSpec {
    if (!this.make) return this.spec;
    let s = this.perTarget.get(target);
    if (!s) this.perTarget.set(target, (s = this.make(target)));
    return s;
  }

  path(path: string, options: FileOptions = {}): StagePathSource {
    const at = callerLocation(StageImpl.prototype.path);
    if (typeof path !== "string" || !path.startsWith("/")) {
      throw new StageError(this.name, `path(${JSON.stringify(path)}) is not absolute: give a path inside the stage's result, like "/out/app"`, "path", at);
    }
    try {
      checkFileOptions("path", options, ["mode", "owner"], at);
    } catch (e) {
      throw new StageError(this.name, (e as Error).message.replace(/^.*?path\(\): /, "path(): "), "path", at);
    }
    return branded(SOURCE_BRAND, { kind: "stage-path" as const, stage: this as Stage, path: cleanPath(path), ...fileOptions(options) });
  }

  toString(): string {
    return `stage("${this.name}")`;
  }

  /** A stage in JSON is its name: specs reference each other, and cycles would break stringify. */
  toJSON(): { stage: string } {
    return { stage: this.name };
  }
}

/**
 * Defines a stage: one unit of caching that produces one layer (its `copy` and `run` changes on top
 * of its base). Export a stage (directly, or inside exported arrays/objects) to make it an output
 * image; stages that are not exported are built only when an exported one needs them.
 * @param name unique; lowercase letters, digits and `.`/`_`/`-` separators (it becomes an image ref)
 * @example
 * const build = stage("build", {
 *   from: image("docker.io/library/golang:1.22"),
 *   copy: { "/src/main.go": local("./main.go") },
 *   run: "cd /src && go build -o /out/hello main.go",
 * });
 * export const hello = stage("hello", { from: scratch(), copy: { "/hello": build.path("/out/hello") }, cmd: ["/hello"] });
 */
export function stage(name: string, spec: StageOptions): Stage {
  return defineStage(name, spec, callerLocation(stage));
}

/**
 * `stage()` with its spec written as a function of the platform the stage is built for: how
 * per-platform values (GOARCH, a download URL) reach the config. Called once for the host when
 * `images.ts` loads, then once per platform a build needs; define other stages outside it.
 * @example
 * const build = stageFor("build", (target) => ({
 *   platform: "host", // runs natively, once per target platform
 *   from: debian({ suite: "bookworm", packages: ["golang-go"] }),
 *   env: { CGO_ENABLED: "0", GOOS: target.os, GOARCH: target.arch },
 *   run: "go build -o /out/hello .",
 * }));
 */
export function stageFor(name: string, spec: StageSpecFunction): Stage {
  return defineStage(name, spec, callerLocation(stageFor));
}

/**
 * The stage an `image()`'s or `oci()`'s `.path()` reads from: the base as it is, nothing run on it,
 * named after the base ("base.alpine-3-20") and shared by every `.path()` of the same base in one
 * config, so `binds` and `copy` take an image's files without a stage written for it.
 */
export function baseStage(base: ImageBase | OciBase, at: SourceLocation | undefined): Stage {
  const what = base.kind === "image" ? [base.ref, base.platform ?? ""] : [base.layout.split("/").filter(Boolean).pop() ?? "oci", base.ref ?? ""];
  let name = ("base." + what.join("-").toLowerCase().replace(/[^a-z0-9]+/g, "-")).slice(0, 100).replace(/-+$/, "");
  const same = (st: Stage) => JSON.stringify(st.spec.from) === JSON.stringify(base);
  let existing = collection?.get(name);
  if (existing && !same(existing)) {
    // Two bases that read alike once lowercased (or a user's stage of that name): told apart by a digest.
    name += "-" + sha256Hex(JSON.stringify(base)).slice(0, 8);
    existing = collection?.get(name);
  }
  if (existing && same(existing)) return existing;
  return defineStage(name, { from: base }, at);
}

/**
 * `stage()` for frontends: `at` is where errors point (a Dockerfile line), `origin` what plan names.
 * Not part of the public API.
 */
export function defineStage(name: string, spec: StageOptions | StageSpecFunction, at: SourceLocation | undefined, origin?: StageOrigin): Stage {
  const label = typeof name === "string" ? name : String(name);
  const fail = (key: string | undefined, message: string): never => {
    throw new StageError(label, message, key, at);
  };
  if (typeof name === "string" && name.length > MAX_NAME_LENGTH) {
    fail(undefined, `the name is ${name.length} characters long; stage names are at most ${MAX_NAME_LENGTH} (they become image references and tags)`);
  }
  if (typeof name !== "string" || !NAME.test(name)) {
    fail(undefined, `the name ${typeof name === "string" ? JSON.stringify(name) : describe(name)} cannot be part of an image reference: use lowercase letters and digits, separated by ".", "_" or "-" (like "web-api")`);
  }
  const previous = collection?.get(name);
  if (previous) {
    const where = previous.definedAt ? ` at ${previous.definedAt.file.split("/").pop()}:${previous.definedAt.line}` : "";
    fail(undefined, `a stage named "${name}" is already defined${where}; stage names must be unique`);
  }
  const options = (target: string): StageOptions => {
    const o = typeof spec === "function" ? spec(targetPlatform(target)) : spec;
    if (typeof o !== "object" || o === null || Array.isArray(o)) {
      fail(undefined, `the spec must be an object like { from: image("…"), run: "…" }${typeof spec === "function" ? " (returned by the spec function)" : ""}, got ${describe(o)}`);
    }
    return o;
  };
  const withOrigin = (s: StageSpec): StageSpec =>
    origin ? Object.freeze({ ...s, origin: Object.freeze({ ...origin, ...(origin.args ? { args: Object.freeze({ ...origin.args }) } : {}) }) }) : s;
  // A spec function is called at once for the host (so mistakes show here, with this line), then
  // once per platform the graph builds the stage for.
  const normalised = withOrigin(validateSpec(options(formatPlatform(hostPlatform())), fail));
  const make =
    typeof spec === "function"
      ? (target: string) => {
          const s = validateSpec(options(target), fail);
          if (s.platform !== normalised.platform || String(s.platforms) !== String(normalised.platforms)) {
            fail("platform", `the spec function must give the same platform and platforms for every target (for ${target} it gave ${s.platform ?? s.platforms ?? "none"})`);
          }
          return withOrigin(s);
        }
      : undefined;
  const s = new StageImpl(name, normalised, at, make);
  collection?.set(name, s);
  return s;
}

type Fail = (key: string | undefined, message: string) => never;

function validateSpec(o: StageOptions, fail: Fail): StageSpec {
  for (const key of Object.keys(o)) {
    if (!(KEYS as readonly string[]).includes(key)) fail(key, `unknown key "${key}"${didYouMean(key, KEYS)}`);
  }
  if (!("from" in o) || o.from === undefined) {
    fail("from", `missing: every stage starts from a base, like from: image("docker.io/library/debian:12"), scratch() or another stage`);
  }
  const from = toBase(o.from, fail);

  const copy: [string, Source][] = [];
  for (const [dest, source] of entries(o.copy, "copy", `{ "/app/main.go": local("./main.go") }`, fail)) {
    if (!dest.startsWith("/")) fail("copy", `destination ${JSON.stringify(dest)} is not absolute: write the full path in the image, like "/${dest.replace(/^\.?\/*/, "")}"`);
    if (!isSource(source)) {
      fail("copy", `the source for ${JSON.stringify(dest)} must be local(…), inline(…) or someStage.path(…), got ${describe(source)}`);
    }
    // A trailing "/" says the destination is a directory (BuildKit): a file goes in by its name.
    const clean = cleanPath(dest);
    copy.push([clean !== "/" && dest.endsWith("/") ? clean + "/" : clean, source]);
  }

  const run = o.run === undefined ? [] : typeof o.run === "string" ? [o.run] : o.run;
  if (!isStringArray(run)) fail("run", `wrong type: expected a script string or an array of them, got ${describe(o.run)}`);
  const shell = o.shell ?? ["/bin/sh", "-c"];
  if (!isStringArray(shell) || shell.length === 0) fail("shell", `wrong type: expected a non-empty array of strings like ["/bin/sh", "-c"], got ${describe(o.shell)}`);
  if (from.kind === "scratch" && run.length > 0 && o.shell === undefined) {
    fail("run", `scratch() has no shell to run this with: copy one in and set "shell" (e.g. shell: ["/bin/busybox", "sh", "-c"]), or start from an image`);
  }

  const env = stringRecord(o.env, "env", `{ CGO_ENABLED: "0" }`, fail);
  for (const k of Object.keys(env)) if (!ENV_NAME.test(k)) fail("env", `${JSON.stringify(k)} is not a valid environment variable name`);
  const workdir = optionalAbsolute(o.workdir, "workdir", fail);
  const user = optionalString(o.user, "user", `"app" or "1000:1000"`, fail);
  const runAs = optionalString(o.runAs, "runAs", `"nobody" or "1000:1000"`, fail);
  // Shell form (a string) is wrapped in the stage's shell, as Docker wraps `CMD x` in its SHELL.
  const entrypoint = typeof o.entrypoint === "string" ? [...shell, o.entrypoint] : optionalStringArray(o.entrypoint, "entrypoint", `["/usr/bin/tini", "--"] or a shell command string`, fail);
  const cmd = typeof o.cmd === "string" ? [...shell, o.cmd] : optionalStringArray(o.cmd, "cmd", `["/bin/hello"] or a shell command string`, fail);
  const expose = [...new Set((o.expose === undefined ? [] : Array.isArray(o.expose) ? o.expose : fail("expose", `wrong type: expected an array like [8080, "53/udp"], got ${describe(o.expose)}`)).flatMap((p) => ports(p, fail)))];
  const healthcheck = o.healthcheck === undefined ? undefined : toHealthcheck(o.healthcheck, fail);
  const onBuild = optionalStringArray(o.onBuild, "onBuild", `["RUN make"]`, fail);
  for (const t of onBuild ?? []) if (t.trim() === "" || /^\s*(ONBUILD|FROM|MAINTAINER)\b/i.test(t)) fail("onBuild", `${JSON.stringify(t)} cannot be a trigger: give a Dockerfile instruction other than ONBUILD, FROM or MAINTAINER, like "RUN make"`);
  const labels = stringRecord(o.labels, "labels", `{ "org.opencontainers.image.source": "…" }`, fail);
  if (o.labelsFrom !== undefined && !(isSource(o.labelsFrom) && o.labelsFrom.kind === "stage-path")) fail("labelsFrom", `must be a directory of another stage, like someStage.path("/out/labels"), got ${describe(o.labelsFrom)}`);
  const labelsFrom = o.labelsFrom as StagePathSource | undefined;
  const volumes = optionalStringArray(o.volumes, "volumes", `["/data"]`, fail) ?? [];
  for (const v of volumes) if (!v.startsWith("/")) fail("volumes", `${JSON.stringify(v)} is not absolute`);
  const stopSignal = optionalString(o.stopSignal, "stopSignal", `"SIGINT"`, fail);
  const annotations = stringRecord(o.annotations, "annotations", `{ "org.opencontainers.image.version": "1.0" }`, fail);
  const network = o.network ?? "host";
  if (network !== "host" && network !== "none") fail("network", `must be "host" or "none", got ${describe(o.network)}`);

  const binds: Bind[] = [];
  const stageBinds: StageBind[] = [];
  for (const [target, value] of entries(o.binds, "binds", `{ "/src": "./src" }`, fail)) {
    if (!target.startsWith("/")) fail("binds", `target ${JSON.stringify(target)} is not absolute: it is the path inside the sandbox`);
    if (isSource(value) && value.kind === "stage-path") stageBinds.push(Object.freeze({ target: cleanPath(target), from: value }));
    else if (typeof value === "string" && value !== "") binds.push(Object.freeze({ target: cleanPath(target), host: value, readonly: true }));
    else if (isPlainObject(value) && typeof value.host === "string" && value.host !== "" && (value.readonly === undefined || typeof value.readonly === "boolean") && Object.keys(value).every((k) => k === "host" || k === "readonly")) {
      binds.push(Object.freeze({ target: cleanPath(target), host: value.host, readonly: value.readonly ?? true }));
    } else fail("binds", `the bind for ${JSON.stringify(target)} must be a host path, { host, readonly? } or someStage.path(…), got ${describe(value)}`);
  }
  const tmpfs = optionalStringArray(o.tmpfs, "tmpfs", `["/tmp"]`, fail) ?? [];
  for (const t of tmpfs) if (!t.startsWith("/")) fail("tmpfs", `${JSON.stringify(t)} is not absolute: it is the path inside the sandbox`);

  const caches = stringRecord(o.caches, "caches", `{ "/root/.cache/go-build": "go-build" }`, fail);
  for (const [target, id] of Object.entries(caches)) {
    if (!target.startsWith("/")) fail("caches", `target ${JSON.stringify(target)} is not absolute`);
    if (!ID.test(id)) fail("caches", `cache id ${JSON.stringify(id)} must be letters, digits, ".", "_" or "-"`);
  }

  const secrets: Record<string, SecretSource> = {};
  for (const [id, value] of entries(o.secrets, "secrets", `{ token: { env: "GITHUB_TOKEN" } }`, fail)) {
    if (!ID.test(id)) fail("secrets", `secret id ${JSON.stringify(id)} must be letters, digits, ".", "_" or "-" (it becomes /run/secrets/<id>)`);
    const keys = isPlainObject(value) ? Object.keys(value) : [];
    if (keys.length === 1 && keys[0] === "env" && typeof value.env === "string") secrets[id] = Object.freeze({ env: value.env });
    else if (keys.length === 1 && keys[0] === "file" && typeof value.file === "string") secrets[id] = Object.freeze({ file: value.file });
    else fail("secrets", `secret "${id}" must be { env: "NAME" } or { file: "path" }, got ${describe(value)}`);
  }

  const squash = o.squash ?? false;
  if (typeof squash !== "boolean") fail("squash", `wrong type: expected true or false, got ${describe(o.squash)}`);
  const compression = o.compression;
  if (compression !== undefined && compression !== "gzip" && compression !== "zstd") fail("compression", `expected "gzip" or "zstd", got ${describe(o.compression)}`);
  const tags = optionalStringArray(o.tags, "tags", `["registry.example.com/app:1.0"]`, fail) ?? [];
  for (const t of tags) if (!TAG.test(t)) fail("tags", `${JSON.stringify(t)} is not an image reference like "registry.example.com/app:1.0"`);
  const platform = optionalString(o.platform, "platform", `"linux/arm64" or "host"`, fail);
  if (platform !== undefined && platform !== "host" && !PLATFORM.test(platform)) fail("platform", `${JSON.stringify(platform)} is not a platform like "linux/arm64" (or "host")`);
  let platforms: string[] | undefined;
  if (o.platforms !== undefined) {
    const list = optionalStringArray(o.platforms, "platforms", `["linux/amd64", "linux/arm64"]`, fail)!;
    if (list.length === 0) fail("platforms", `is empty: list at least one platform, like ["linux/amd64", "linux/arm64"]`);
    if (platform !== undefined) fail("platforms", `set either "platform" (one) or "platforms" (an image index of several), not both`);
    for (const p of list) if (!PLATFORM.test(p)) fail("platforms", `${JSON.stringify(p)} is not a platform like "linux/arm64"${p === "host" ? ` ("host" belongs in "platform")` : ""}`);
    platforms = list.map(canonicalPlatform);
    const dup = platforms.find((p, i) => platforms!.indexOf(p) !== i);
    if (dup) fail("platforms", `lists ${dup} twice`);
  }

  const spec: StageSpec = {
    from,
    copy: Object.freeze(copy.map((c) => Object.freeze(c))) as StageSpec["copy"],
    run: Object.freeze([...run]),
    shell: Object.freeze([...shell]),
    env: Object.freeze(env),
    ...(workdir !== undefined ? { workdir: cleanPath(workdir) } : {}),
    ...(user !== undefined ? { user } : {}),
    ...(runAs !== undefined ? { runAs } : {}),
    ...(entrypoint !== undefined ? { entrypoint: Object.freeze(entrypoint) } : {}),
    ...(cmd !== undefined ? { cmd: Object.freeze(cmd) } : {}),
    expose: Object.freeze(expose),
    ...(healthcheck !== undefined ? { healthcheck } : {}),
    ...(onBuild !== undefined ? { onBuild: Object.freeze(onBuild) } : {}),
    labels: Object.freeze(labels),
    ...(labelsFrom !== undefined ? { labelsFrom } : {}),
    volumes: Object.freeze(volumes),
    ...(stopSignal !== undefined ? { stopSignal } : {}),
    annotations: Object.freeze(annotations),
    network,
    binds: Object.freeze(binds),
    stageBinds: Object.freeze(stageBinds),
    tmpfs: Object.freeze(tmpfs.map(cleanPath)),
    caches: Object.freeze(caches),
    secrets: Object.freeze(secrets),
    squash,
    ...(compression !== undefined ? { compression } : {}),
    tags: Object.freeze(tags),
    ...(platform !== undefined ? { platform: platform === "host" ? platform : canonicalPlatform(platform) } : {}),
    ...(platforms !== undefined ? { platforms: Object.freeze(platforms) } : {}),
  };
  return Object.freeze(spec);
}

function toBase(x: unknown, fail: Fail): Base {
  if (isStage(x)) return branded(BASE_BRAND, { kind: "stage" as const, stage: x });
  if (isBase(x)) return x;
  const hint = typeof x === "string" ? ` (did you mean from: image(${JSON.stringify(x)})?)` : "";
  return fail("from", `wrong type: expected image(…), scratch(), oci(…), tarball(…), debian(…) or another stage, got ${describe(x)}${hint}`);
}

/** Posix-normalised absolute path without a trailing slash. */
function cleanPath(p: string): string {
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

function isPlainObject(x: unknown): x is Record<string, any> {
  if (typeof x !== "object" || x === null || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function isStringArray(x: unknown): x is string[] {
  return Array.isArray(x) && x.every((v) => typeof v === "string");
}

function entries(x: unknown, key: string, example: string, fail: Fail): [string, any][] {
  if (x === undefined) return [];
  if (!isPlainObject(x)) fail(key, `wrong type: expected an object like ${example}, got ${describe(x)}`);
  return Object.entries(x as object);
}

function stringRecord(x: unknown, key: string, example: string, fail: Fail): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of entries(x, key, example, fail)) {
    if (typeof v !== "string") fail(key, `wrong type: ${key}.${k} must be a string, got ${describe(v)}`);
    out[k] = v;
  }
  return out;
}

function optionalString(x: unknown, key: string, example: string, fail: Fail): string | undefined {
  if (x === undefined) return undefined;
  if (typeof x !== "string" || x === "") fail(key, `wrong type: expected a string like ${example}, got ${describe(x)}`);
  return x as string;
}

function optionalAbsolute(x: unknown, key: string, fail: Fail): string | undefined {
  const s = optionalString(x, key, `"/src"`, fail);
  if (s !== undefined && !s.startsWith("/")) fail(key, `${JSON.stringify(s)} is not absolute, like "/src"`);
  return s;
}

function optionalStringArray(x: unknown, key: string, example: string, fail: Fail): string[] | undefined {
  if (x === undefined) return undefined;
  if (!isStringArray(x)) fail(key, `wrong type: expected an array of strings like ${example}, got ${describe(x)}`);
  return [...(x as string[])];
}

/** One port, or a range written as one port each ("8000-8002/tcp" → 8000/tcp, 8001/tcp, 8002/tcp) as Docker does. */
function ports(p: unknown, fail: Fail): string[] {
  const m = typeof p === "number" ? [String(p), String(p), undefined, "tcp"] : typeof p === "string" ? /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(p) : null;
  const first = m ? Number(m[1]) : NaN;
  const last = m?.[2] !== undefined ? Number(m[2]) : first;
  if (!m || !(first >= 1 && first <= 65535) || !(last >= first && last <= 65535)) {
    return fail("expose", `${describe(p)} is not a port like 8080, "53/udp" or a range like "8000-8010/tcp"`);
  }
  const out: string[] = [];
  for (let n = first; n <= last; n++) out.push(`${n}/${m[3] ?? "tcp"}`);
  return out;
}

const DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, "µs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** A Go duration string ("1m30s", "500ms") in nanoseconds, as Docker's config stores durations. */
function duration(x: unknown, key: string, fail: Fail): number {
  const parts = typeof x === "string" ? [...x.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)] : [];
  if (typeof x !== "string" || parts.length === 0 || parts.map((p) => p[0]).join("") !== x) {
    return fail("healthcheck", `${key} must be a duration like "30s", "1m30s" or "500ms", got ${describe(x)}`);
  }
  const ns = Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * DURATION_UNITS[p[2]!]!, 0));
  // Docker refuses non-zero durations under 1ms.
  if (ns !== 0 && ns < 1e6) fail("healthcheck", `${key} must be at least 1ms, got ${JSON.stringify(x)}`);
  return ns;
}

function toHealthcheck(x: unknown, fail: Fail): Healthcheck {
  if (x === "none") return Object.freeze({ test: Object.freeze(["NONE"]) });
  if (!isPlainObject(x) || !("test" in x)) {
    return fail("healthcheck", `expected { test: "…", interval?: "30s", … } or "none", got ${describe(x)}`);
  }
  const allowed = ["test", "interval", "timeout", "startPeriod", "startInterval", "retries"];
  for (const k of Object.keys(x)) if (!allowed.includes(k)) fail("healthcheck", `unknown option "${k}"${didYouMean(k, allowed)}`);
  const test = typeof x.test === "string" && x.test.trim() !== "" ? ["CMD-SHELL", x.test] : isStringArray(x.test) && x.test.length > 0 ? ["CMD", ...x.test] : fail("healthcheck", `test must be a shell command string or a non-empty array, got ${describe(x.test)}`);
  const out: { -readonly [K in keyof Healthcheck]: Healthcheck[K] } = { test: Object.freeze(test) };
  for (const k of ["interval", "timeout", "startPeriod", "startInterval"] as const) {
    if (x[k] !== undefined) out[k] = duration(x[k], k, fail);
  }
  if (x.retries !== undefined) {
    if (!Number.isInteger(x.retries) || x.retries < 0) fail("healthcheck", `retries must be a whole number ≥ 0, got ${describe(x.retries)}`);
    out.retries = x.retries;
  }
  return Object.freeze(out);
}

function targetPlatform(target: string): TargetPlatform {
  const p = parsePlatform(target);
  return Object.freeze({ platform: formatPlatform(p), os: p.os, arch: p.architecture, ...(p.variant ? { variant: p.variant } : {}) });
}

/**
 * A per-platform instance of a stage, as the graph builds it (instances.ts): its own name
 * ("hello [linux/arm64]") and a spec whose platform is concrete and whose stage references point at
 * other instances. Not part of the public API.
 */
export function stageInstance(definition: Stage, name: string, spec: StageSpec): Stage {
  return new StageImpl(name, Object.freeze(spec), definition.definedAt, undefined, definition);
}
