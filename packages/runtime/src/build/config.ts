// Image config inheritance, as Docker does it: a stage starts from its base's config; env and
// labels merge (the stage wins), exposed ports and volumes add up, workdir/user/stopSignal replace;
// setting `entrypoint` without `cmd` drops the inherited cmd.
import type { StageSpec } from "@mstage/core";

/** The `config` object of an OCI image config (runtime settings). */
export interface RuntimeConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function envRecord(env: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of env ?? []) {
    const i = kv.indexOf("=");
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/**
 * The fields that shape the layer (env, workdir): what `run` sees and what is stored in the stage's
 * result. Config-only fields are applied later by `applyConfigFields`, so changing them never
 * touches a layer.
 */
export function applyLayerFields(base: RuntimeConfig, spec: StageSpec): RuntimeConfig {
  const out: RuntimeConfig = structuredClone(base);
  if (Object.keys(spec.env).length) out.Env = envList({ ...envRecord(base.Env), ...spec.env });
  if (spec.workdir) out.WorkingDir = spec.workdir;
  return prune(out);
}

/** The image-config-only fields of a stage, on top of `applyLayerFields`' result. */
export function applyConfigFields(base: RuntimeConfig, spec: StageSpec): RuntimeConfig {
  const out: RuntimeConfig = structuredClone(base);
  if (spec.user !== undefined) out.User = spec.user;
  if (spec.entrypoint !== undefined) {
    out.Entrypoint = [...spec.entrypoint];
    if (spec.cmd === undefined) delete out.Cmd;
  }
  if (spec.cmd !== undefined) out.Cmd = [...spec.cmd];
  if (spec.expose.length) {
    out.ExposedPorts = { ...out.ExposedPorts };
    for (const p of spec.expose) out.ExposedPorts[p.includes("/") ? p : `${p}/tcp`] = {};
  }
  if (spec.volumes.length) {
    out.Volumes = { ...out.Volumes };
    for (const v of spec.volumes) out.Volumes[v] = {};
  }
  if (Object.keys(spec.labels).length) out.Labels = { ...out.Labels, ...spec.labels };
  if (spec.stopSignal !== undefined) out.StopSignal = spec.stopSignal;
  return prune(out);
}

/** Drops empty fields and sorts map keys, so equal configs serialise to equal bytes. */
function prune(c: RuntimeConfig): RuntimeConfig {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(c).sort()) {
    const v = (c as Record<string, unknown>)[key];
    if (v === undefined || v === "") continue;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      if (entries.length === 0) continue;
      out[key] = Object.fromEntries(entries);
    } else {
      out[key] = v;
    }
  }
  return out as RuntimeConfig;
}

/** The environment a `run` step gets: the image env plus Docker's defaults for PATH and HOME. */
export function stepEnv(config: RuntimeConfig, home: string): Record<string, string> {
  const env = envRecord(config.Env);
  env.PATH ??= DEFAULT_PATH;
  env.HOME ??= home;
  return env;
}
