// Options every command accepts, resolved once in main.ts.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { UserError, canonicalPlatform } from "@mstage/core";

export interface GlobalOptions {
  /** Absolute path of images.ts. */
  file: string;
  /** Absolute path of the content store shared by all projects of this user. */
  store: string;
  color: boolean;
  quiet: boolean;
  verbose: boolean;
}

export function defaultStore(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MSTAGE_STORE) return resolve(env.MSTAGE_STORE);
  const cache = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(cache, "mstage");
}

export function resolveGlobalOptions(raw: Record<string, unknown>): GlobalOptions {
  return {
    file: resolve(typeof raw.file === "string" ? raw.file : "images.ts"),
    store: typeof raw.store === "string" ? resolve(raw.store) : defaultStore(),
    color: raw.color !== false && !process.env.NO_COLOR,
    quiet: raw.q === true || raw.quiet === true,
    verbose: raw.v === true || raw.verbose === true,
  };
}

/** `--platform linux/amd64,linux/arm64` (repeatable): the platforms to build; undefined when not given. */
export function platformOption(raw: unknown): string[] | undefined {
  if (raw === undefined || raw === false) return undefined;
  const list = (Array.isArray(raw) ? raw : [raw]).flatMap((v) => String(v).split(",")).map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new UserError(`--platform needs a platform like linux/arm64 (or several: linux/amd64,linux/arm64)`);
  return [...new Set(list.map(canonicalPlatform))];
}
