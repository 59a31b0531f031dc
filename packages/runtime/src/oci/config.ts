// Image-config inheritance, Docker/BuildKit style: a stage starts from its base's whole config and
// applies its own fields on top. Pure functions over ImageConfig values; nothing here touches disk.
//
// How the builder uses it, per stage in graph order (cheap, so also for cached stages):
//   base   = the parent stage's final config, a pulled/OCI base's config, or emptyImageConfig()
//   runCfg = applyStageConfig(base, spec, "run")    env/workdir for the stage's `run`; user = base's
//   final  = addLayer(applyStageConfig(base, spec, "final"), diffIdOrNull, stageHistoryEntry(...))
// `final` is what later stages inherit and what an output writes. Only `run`-phase fields (env,
// workdir, the inherited user) can change a layer; the rest (user, entrypoint, cmd, labels, expose,
// volumes, stopSignal, healthcheck, onBuild) only change this config, so a config-only edit rewrites config + manifest.
import { StageError, UserError } from "@mstage/core";
import type { StageSpec } from "@mstage/core";
import type { Digest } from "./digest.ts";
import type { ContainerConfig, HistoryEntry, ImageConfig, Platform } from "./types.ts";

/** BuildKit's system.DefaultPathEnv("linux"), put into the config of images built from scratch. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The stage fields that feed the image config. */
export type StageConfigFields = Partial<
  Pick<StageSpec, "env" | "workdir" | "user" | "entrypoint" | "cmd" | "expose" | "labels" | "volumes" | "stopSignal" | "healthcheck" | "onBuild">
>;

/** "run": what the stage's own `run` sees (env, workdir). "final": the image after the stage. */
export type ConfigPhase = "run" | "final";

/**
 * The config of an image with no base (scratch, tarball, debian), as BuildKit makes it for
 * `FROM scratch`: WorkingDir "/" and a default PATH, so `cmd: ["sh"]` finds a shell.
 */
export function emptyImageConfig(platform: Platform): ImageConfig {
  return {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: [`PATH=${DEFAULT_PATH}`], WorkingDir: "/" },
    rootfs: { type: "layers", diff_ids: [] },
    history: [],
  };
}

/**
 * Applies a stage's fields to its base's config. Never mutates `base`.
 * @param options.stage the stage name, for error messages
 */
export function applyStageConfig(
  base: ImageConfig,
  spec: StageConfigFields,
  phase: ConfigPhase,
  options: { stage?: string } = {},
): ImageConfig {
  const out = cloneConfig(base);
  const c: ContainerConfig = (out.config ??= {});

  if (spec.env && Object.keys(spec.env).length) c.Env = mergeEnv(c.Env ?? [], spec.env);
  if (spec.workdir) c.WorkingDir = resolveWorkdir(c.WorkingDir, spec.workdir);
  if (phase === "run") return out;

  // A base's ONBUILD triggers are for the build right on top of it, never passed further (Docker).
  delete c.OnBuild;
  if (spec.onBuild?.length) c.OnBuild = [...spec.onBuild];
  if (spec.healthcheck) c.Healthcheck = dockerHealthcheck(spec.healthcheck);
  if (spec.user !== undefined) setOrDelete(c, "User", spec.user);
  if (spec.entrypoint !== undefined) {
    setOrDelete(c, "Entrypoint", spec.entrypoint.length ? [...spec.entrypoint] : undefined);
    // Docker: a new ENTRYPOINT drops the CMD inherited from the base (it was meant for the old one).
    if (spec.cmd === undefined) delete c.Cmd;
  }
  if (spec.cmd !== undefined) setOrDelete(c, "Cmd", spec.cmd.length ? [...spec.cmd] : undefined);
  if (spec.labels && Object.keys(spec.labels).length) c.Labels = { ...(c.Labels ?? {}), ...spec.labels };
  if (spec.expose?.length) {
    const ports = { ...(c.ExposedPorts ?? {}) };
    for (const p of spec.expose) ports[normalisePort(p, options.stage)] = {};
    c.ExposedPorts = ports;
  }
  if (spec.volumes?.length) {
    const vols = { ...(c.Volumes ?? {}) };
    for (const v of spec.volumes) vols[v] = {};
    c.Volumes = vols;
  }
  if (spec.stopSignal !== undefined) setOrDelete(c, "StopSignal", spec.stopSignal || undefined);
  return out;
}

/**
 * Appends one stage's history entry and, unless `diffId` is null, its layer. The image's `created`
 * becomes the entry's. A null layer marks the entry `empty_layer`, as Docker does for ENV or CMD.
 */
export function addLayer(config: ImageConfig, diffId: Digest | null, entry: HistoryEntry): ImageConfig {
  const out = cloneConfig(config);
  const h: HistoryEntry = { ...entry };
  if (diffId) {
    out.rootfs.diff_ids.push(diffId);
    delete h.empty_layer;
  } else {
    h.empty_layer = true;
  }
  (out.history ??= []).push(h);
  if (h.created !== undefined) out.created = h.created;
  return out;
}

/**
 * `squash: true`: the whole filesystem as one layer. The history is kept for `docker history`, every
 * entry but the last marked empty, so the one non-empty entry lines up with the one layer.
 */
export function squashLayers(config: ImageConfig, diffId: Digest): ImageConfig {
  const out = cloneConfig(config);
  out.rootfs.diff_ids = [diffId];
  const history = out.history ?? [];
  out.history = history.map((h, i) => {
    const e = { ...h };
    if (i === history.length - 1) delete e.empty_layer;
    else e.empty_layer = true;
    return e;
  });
  if (!out.history.length) out.history.push({ created: out.created, created_by: "mstage squash" });
  return out;
}

/** RFC 3339 time of SOURCE_DATE_EPOCH seconds (default 0), second precision like Docker writes. */
export function createdTimestamp(sourceDateEpoch = 0): string {
  if (!Number.isInteger(sourceDateEpoch) || sourceDateEpoch < 0) {
    throw new RangeError(`SOURCE_DATE_EPOCH must be a whole number of seconds ≥ 0, got ${sourceDateEpoch}`);
  }
  return new Date(sourceDateEpoch * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Reads SOURCE_DATE_EPOCH from an environment (default 0), with an error that says what to write. */
export function sourceDateEpochFrom(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === "") return 0;
  if (!/^\d+$/.test(raw.trim())) {
    throw new UserError(`SOURCE_DATE_EPOCH=${JSON.stringify(raw)} is not a whole number of seconds since 1970; unset it or write e.g. 1700000000`);
  }
  return Number(raw.trim());
}

/**
 * The history entry of one stage. `created_by` reads like a Dockerfile line so `docker history`
 * and `skopeo inspect --config` say which stage made which layer.
 */
export function stageHistoryEntry(
  stage: string,
  spec: Partial<Pick<StageSpec, "copy" | "run">>,
  options: { created: string; emptyLayer: boolean },
): HistoryEntry {
  const parts: string[] = [];
  const copies = spec.copy ?? [];
  if (copies.length) parts.push(`COPY ${copies.map(([dest]) => dest).join(" ")}`);
  for (const script of spec.run ?? []) parts.push(`RUN ${script.replace(/\s+/g, " ").trim()}`);
  let createdBy = `mstage stage ${stage}` + (parts.length ? `: ${parts.join("; ")}` : "");
  if (createdBy.length > 1000) createdBy = createdBy.slice(0, 999) + "…";
  return {
    created: options.created,
    created_by: createdBy,
    comment: "mstage",
    ...(options.emptyLayer ? { empty_layer: true } : {}),
  };
}

/** The config's Env as a map (later duplicates win), with BuildKit's default PATH when unset. */
export function runEnv(config: ImageConfig): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of config.config?.Env ?? []) {
    const i = kv.indexOf("=");
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    else if (i < 0) env[kv] = "";
  }
  env.PATH ??= DEFAULT_PATH;
  return env;
}

/** Env merged by name: a variable keeps its place and takes the stage's value; new ones are appended. */
function mergeEnv(base: string[], add: Readonly<Record<string, string>>): string[] {
  const out = [...base];
  for (const [name, value] of Object.entries(add)) {
    const i = out.findIndex((kv) => kv === name || kv.startsWith(name + "="));
    if (i >= 0) out[i] = `${name}=${value}`;
    else out.push(`${name}=${value}`);
  }
  return out;
}

/** A relative workdir continues from the inherited one, like Docker's WORKDIR. */
function resolveWorkdir(current: string | undefined, wanted: string): string {
  const joined = wanted.startsWith("/") ? wanted : `${current || "/"}/${wanted}`;
  const parts: string[] = [];
  for (const p of joined.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return "/" + parts.join("/");
}

const PORT_RE = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i;

/** "8080" → "8080/tcp"; "53/UDP" → "53/udp"; ranges like "7000-7002/tcp" are kept whole. */
export function normalisePort(port: string, stage?: string): string {
  const m = PORT_RE.exec(port.trim());
  const inRange = (n: string | undefined) => n === undefined || (Number(n) >= 1 && Number(n) <= 65535);
  if (!m || !inRange(m[1]) || !inRange(m[2]) || (m[2] !== undefined && Number(m[2]) < Number(m[1]))) {
    throw new StageError(stage ?? "?", `${JSON.stringify(port)} is not a port: write "8080", "8080/tcp", "53/udp" or "7000-7002"`, "expose");
  }
  return `${m[1]}${m[2] ? `-${m[2]}` : ""}/${(m[3] ?? "tcp").toLowerCase()}`;
}

/** Docker's HealthConfig JSON: Test plus the durations (ns) and retries that were given. */
function dockerHealthcheck(h: NonNullable<StageSpec["healthcheck"]>): Record<string, unknown> {
  const out: Record<string, unknown> = { Test: [...h.test] };
  if (h.interval !== undefined) out.Interval = h.interval;
  if (h.timeout !== undefined) out.Timeout = h.timeout;
  if (h.startPeriod !== undefined) out.StartPeriod = h.startPeriod;
  if (h.startInterval !== undefined) out.StartInterval = h.startInterval;
  if (h.retries !== undefined) out.Retries = h.retries;
  return out;
}

function setOrDelete<K extends keyof ContainerConfig>(c: ContainerConfig, key: K, value: ContainerConfig[K] | undefined): void {
  if (value === undefined || value === "") delete c[key];
  else c[key] = value;
}

function cloneConfig(c: ImageConfig): ImageConfig {
  return structuredClone(c);
}
