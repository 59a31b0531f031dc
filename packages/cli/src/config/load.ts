// Loads images.ts the way vite loads its config: esbuild bundles it with the local files it imports
// (bare imports stay external), `import "mstage"` resolves to this CLI's own API instance, and the
// bundle is written beside images.ts, imported, and deleted. A compile cache in .mstage/ skips
// esbuild when no input file changed, which keeps a no-op `plan` close to node's start-up time.
import { readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import * as core from "@mstage/core";
import { UserError, beginStageCollection, isStage, writeFileAtomicSync, type Stage } from "@mstage/core";
import { codeFrame, filterStack, firstUserFrame, frameOf } from "./frames.ts";

export interface LoadedConfig {
  /** Absolute path of images.ts. */
  file: string;
  /** Its directory: local paths, binds, state and images.lock are relative to it. */
  projectDir: string;
  /** Every stage the config defined, in definition order. */
  stages: Stage[];
  /** The exported stages (found recursively in exported arrays and plain objects). */
  targets: Stage[];
  /** Absolute paths of the files the config is made of (watch mode watches them). */
  dependencies: string[];
}

export interface LoadOptions {
  /** Keep mstage-internal frames in stacks of errors thrown by the config. */
  verbose?: boolean;
  /** Ignore the compile cache (always run esbuild). */
  noCache?: boolean;
}

const API_KEY = Symbol.for("mstage.api");
/** The images.ts API, as `import ... from "mstage"` sees it. */
const API = {
  stage: core.stage,
  stageFor: core.stageFor,
  image: core.image,
  scratch: core.scratch,
  oci: core.oci,
  tarball: core.tarball,
  debian: core.debian,
  local: core.local,
  inline: core.inline,
  archive: core.archive,
  http: core.http,
  git: core.git,
  // Set by loadFrontends() before a config that calls them runs.
  dockerfile: undefined as unknown,
  stacker: undefined as unknown,
};
/** The API functions that live in "@mstage/core/frontends" (the Dockerfile and stacker code). */
const FRONTENDS = ["dockerfile", "stacker"] as const;
let loads = 0;
const CACHE_VERSION = `2:${Object.keys(API).join(",")}`;

/**
 * Imports the frontends when the compiled config uses one. The "mstage" module below exports each
 * API function as a pure `pick("name")` call, so esbuild drops the ones a config does not import.
 */
async function loadFrontends(code: string): Promise<void> {
  if (API.dockerfile !== undefined || !FRONTENDS.some((k) => code.includes(`("${k}")`))) return;
  const f = await import("@mstage/core/frontends");
  API.dockerfile = f.dockerfile;
  API.stacker = f.stacker;
}

interface CompileCache {
  version: string;
  file: string;
  /** abs path → "size:mtimeMs" */
  inputs: Record<string, string>;
  code: string;
}

export async function loadConfig(file: string, options: LoadOptions = {}): Promise<LoadedConfig> {
  file = resolve(file);
  const projectDir = dirname(file);
  try {
    statSync(file);
  } catch {
    throw new UserError(`no config at ${file}: run \`mstage init\` to write a starter images.ts, or pass -f FILE`);
  }
  process.setSourceMapsEnabled(true);
  const g = globalThis as Record<symbol, unknown>;
  g[API_KEY] ??= API;

  const { code, dependencies } = (!options.noCache && readCompileCache(file)) || (await compile(file));
  await loadFrontends(code);

  // A fresh name each load: import() caches by URL, and watch mode reloads in one process.
  const temp = join(projectDir, `.${basename(file)}.timestamp-${Date.now()}-${process.pid}-${++loads}.mjs`);
  const collection = beginStageCollection({ projectDir });
  let stages: Stage[] = [];
  const targets: Stage[] = [];
  try {
    writeFileSync(temp, code);
    const mod = (await import(pathToFileURL(temp).href)) as Record<string, unknown>;
    // Exported promises (`export const app = makeApp()` with an async makeApp) are awaited while
    // the collection is open, so the stages they create are found like any other.
    await findStages(mod, targets, new Set());
  } catch (e) {
    throw configError(e, file, dependencies, options.verbose === true);
  } finally {
    stages = collection.end();
    try {
      unlinkSync(temp);
    } catch {
      // already gone
    }
  }
  // Files a frontend read (a Dockerfile, a stacker.yaml) are part of the config too.
  for (const f of collection.files()) if (!dependencies.includes(f)) dependencies.push(f);
  return { file, projectDir, stages, targets, dependencies };
}

/** Every Stage in the module's exports, recursively through arrays, plain objects and promises. */
async function findStages(x: unknown, out: Stage[], seen: Set<unknown>): Promise<void> {
  if (typeof x !== "object" || x === null || seen.has(x)) return;
  seen.add(x);
  if (isStage(x)) {
    if (!out.includes(x)) out.push(x);
    return;
  }
  if (typeof (x as { then?: unknown }).then === "function") return findStages(await (x as PromiseLike<unknown>), out, seen);
  const proto = Object.getPrototypeOf(x);
  if (Array.isArray(x)) for (const v of x) await findStages(v, out, seen);
  else if (proto === Object.prototype || proto === null) for (const v of Object.values(x)) await findStages(v, out, seen);
}

function cachePath(file: string): string {
  return join(dirname(file), ".mstage", `config-${basename(file)}.json`);
}

function fingerprint(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

function readCompileCache(file: string): { code: string; dependencies: string[] } | undefined {
  let c: CompileCache;
  try {
    c = JSON.parse(readFileSync(cachePath(file), "utf8")) as CompileCache;
  } catch {
    return undefined;
  }
  if (c.version !== CACHE_VERSION || c.file !== file) return undefined;
  for (const [path, fp] of Object.entries(c.inputs)) if (fingerprint(path) !== fp) return undefined;
  return { code: c.code, dependencies: Object.keys(c.inputs) };
}

async function compile(file: string): Promise<{ code: string; dependencies: string[] }> {
  const projectDir = dirname(file);
  const { build } = await import("esbuild");
  // Fingerprints taken before reading, so an edit during the build invalidates the cache entry.
  let result;
  try {
    result = await build({
      entryPoints: [file],
      outfile: join(projectDir, basename(file) + ".mjs"),
      absWorkingDir: projectDir,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      sourcemap: "inline",
      sourcesContent: false,
      metafile: true,
      write: false,
      logLevel: "silent",
      plugins: [
        {
          name: "mstage",
          setup(b) {
            b.onResolve({ filter: /^mstage$/ }, () => ({ path: "mstage", namespace: "mstage-api" }));
            b.onLoad({ filter: /.*/, namespace: "mstage-api" }, () => ({
              contents:
                `const pick = (name) => globalThis[Symbol.for("mstage.api")][name];\n` +
                Object.keys(API).map((k) => `export const ${k} = /* @__PURE__ */ pick(${JSON.stringify(k)});`).join("\n"),
              loader: "js",
            }));
            // Bare imports (packages, node: builtins) stay external and resolve from images.ts.
            b.onResolve({ filter: /^[^./]/ }, (a) => (isAbsolute(a.path) ? undefined : { path: a.path, external: true }));
          },
        },
      ],
    });
  } catch (e) {
    throw syntaxError(e, projectDir);
  }
  const dependencies = Object.keys(result.metafile!.inputs)
    .filter((p) => !p.startsWith("mstage-api:"))
    .map((p) => resolve(projectDir, p));
  const code = result.outputFiles![0].text;
  const inputs: Record<string, string> = {};
  for (const d of dependencies) inputs[d] = fingerprint(d) ?? "";
  try {
    writeFileAtomicSync(cachePath(file), JSON.stringify({ version: CACHE_VERSION, file, inputs, code } satisfies CompileCache));
  } catch {
    // A read-only project still loads; it just compiles every time.
  }
  return { code, dependencies };
}

interface EsbuildMessage {
  text: string;
  location: { file: string; line: number; column: number; lineText: string } | null;
}

/** esbuild's first error as `images.ts:LINE:COL: message` with the offending line under it. */
function syntaxError(e: unknown, projectDir: string): Error {
  const errors = (e as { errors?: EsbuildMessage[] }).errors;
  if (!Array.isArray(errors) || errors.length === 0) return e as Error;
  const first = errors[0];
  const loc = first.location;
  if (!loc) return new UserError(`images.ts could not be compiled: ${first.text}`);
  const file = displayFile(resolve(projectDir, loc.file));
  const more = errors.length > 1 ? `\n(and ${errors.length - 1} more error${errors.length > 2 ? "s" : ""})` : "";
  return new UserError(`${file}:${loc.line}:${loc.column + 1}: ${first.text}`, {
    detail: frameOf(loc.line, loc.column + 1, loc.lineText) + more,
  });
}

/** An error thrown while evaluating the config: its message, located, with a stack of user frames. */
function configError(e: unknown, file: string, dependencies: string[], verbose: boolean): Error {
  if (e instanceof UserError) return e;
  if (!(e instanceof Error)) return new UserError(`${displayFile(file)}: threw ${String(e)}`);
  const userFiles = new Set(dependencies);
  const stack = e.stack ?? "";
  const at = firstUserFrame(stack, userFiles);
  const where = at ? `${displayFile(at.file)}:${at.line}:${at.column}` : displayFile(file);
  const frame = at ? codeFrame(at) : undefined;
  const frames = filterStack(stack, userFiles, verbose);
  const detail = [frame, frames].filter(Boolean).join("\n");
  return new UserError(`${where}: ${e.name && e.name !== "Error" ? e.name + ": " : ""}${e.message}`, { cause: e, detail: detail || undefined });
}

function displayFile(abs: string): string {
  const rel = relative(process.cwd(), abs);
  return rel.startsWith("..") || isAbsolute(rel) ? abs : rel;
}
