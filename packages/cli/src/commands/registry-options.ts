// The registry flags of `up` and `plan`, read without loading the runtime (a no-op plan stays cheap).
import { UserError } from "@mstage/core";
import type { RegistryUpOptions } from "../app/up-registry.ts";

function list(v: unknown): string[] {
  if (v === undefined || v === false) return [];
  return (Array.isArray(v) ? v : [v]).map(String).filter((s) => s !== "" && s !== "true");
}

/** Reads the registry options as cac hands them over. */
export function parseRegistryOptions(opts: Record<string, unknown>): RegistryUpOptions {
  const checkCache = (flag: string) => (s: string) => {
    if (!/^registry:\/\//.test(s)) throw new UserError(`--${flag} ${JSON.stringify(s)}: write registry://HOST/REPO, e.g. registry://localhost:5000/cache/app`);
    return s;
  };
  return {
    push: opts.push === true,
    insecure: list(opts.insecureRegistry),
    cacheFrom: list(opts.cacheFrom).map(checkCache("cache-from")),
    cacheTo: list(opts.cacheTo).map(checkCache("cache-to")),
  };
}
