// Options every command accepts, resolved once in main.ts.
import { homedir } from "node:os";
import { join, resolve } from "node:path";

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
