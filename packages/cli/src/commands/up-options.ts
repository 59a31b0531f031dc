// The options `up` and `watch` share, read in one place: `up --watch` hands its options to watch
// as they are, so both commands accept and check them alike. Loads no runtime code.
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { UserError } from "@mstage/core";
import type { OutputSpec } from "../app/up-noop.ts";
import type { UpOptions } from "../app/up-run.ts";
import { platformOption } from "../options.ts";
import { parseRegistryOptions } from "./registry-options.ts";
import { parseAttestOptions } from "../app/attest-options.ts";

export type UpFlags = Required<Pick<UpOptions, "outputs" | "jobs" | "registry" | "attest">> & Pick<UpOptions, "noCache" | "refresh" | "offline" | "allowUnpinned" | "platforms" | "compression">;

/** Reads the build options as cac hands them over. */
export function parseUpOptions(opts: Record<string, unknown>): UpFlags {
  return {
    outputs: parseOutputs(opts.output),
    jobs: parseJobs(opts.jobs),
    noCache: noCacheOption(opts),
    refresh: opts.refresh === true,
    offline: opts.offline === true,
    allowUnpinned: opts.allowUnpinned === true,
    registry: parseRegistryOptions(opts),
    attest: parseAttestOptions(opts),
    platforms: platformOption(opts.platform),
    compression: parseCompression(opts.compression),
  };
}

function parseCompression(v: unknown): "gzip" | "zstd" | undefined {
  if (v === undefined) return undefined;
  if (v === "gzip" || v === "zstd") return v;
  throw new UserError(`--compression ${v === true ? "needs a value" : JSON.stringify(String(v))}: write --compression gzip or --compression zstd`);
}

export function parseOutputs(raw: unknown): OutputSpec[] {
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return list.map((v) => {
    const s = String(v);
    const m = /^(oci|docker-archive):(.+)$/.exec(s);
    if (!m) throw new UserError(`--output ${JSON.stringify(s)}: write oci:DIR or docker-archive:FILE`);
    return m[1] === "oci" ? { kind: "oci", dir: resolve(m[2]!) } : { kind: "docker-archive", file: resolve(m[2]!) };
  });
}

function parseJobs(v: unknown): number {
  if (v === undefined || v === true) return availableParallelism();
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--jobs must be a whole number ≥ 1, got ${JSON.stringify(v)}`);
  return n;
}

/** `--no-cache` is `cache: false`; `--no-cache=build` reaches us as `--rebuild build` (see main.ts). */
function noCacheOption(opts: Record<string, unknown>): boolean | string | undefined {
  if (typeof opts.rebuild === "string" && opts.rebuild !== "") return opts.rebuild;
  const v = opts.cache;
  if (v === false) return true;
  if (typeof v === "string" && v !== "") return v;
  return undefined;
}
