// Bundles the CLI (core + runtime + cli sources) into packages/cli/dist. Third-party packages stay
// external and resolve from packages/cli/node_modules at run time (or, installed from the
// tarball that scripts/pack.mjs makes, from the registry dependencies npm installed beside it).
import { build } from "esbuild";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const cliDir = fileURLToPath(new URL("../packages/cli/", import.meta.url));
const cli = JSON.parse(readFileSync(`${cliDir}package.json`, "utf8"));
const external = Object.keys(cli.dependencies);

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  // Node reads a module's map when it loads it (the CLI enables source maps): without the sources
  // in them the maps are a third of the size and stack traces still name src/ files and lines.
  sourcesContent: false,
  external,
  logLevel: "warning",
  outExtension: { ".js": ".mjs" },
  // Commands are imported lazily; separate chunks keep a no-op `plan` from loading `up`'s code.
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  // Bundled CommonJS dependencies (none today) would need require(): give them one.
  banner: { js: "import { createRequire as __mstageCreateRequire } from 'node:module'; const require = __mstageCreateRequire(import.meta.url);" },
};

/**
 * Builds the CLI and the API module into `outdir` (default packages/cli/dist), replacing it. The
 * bundle is written beside it and swapped in by two renames, so a CLI started from `outdir` while
 * this builds (a test running in parallel) finds the old bundle or the new one, never a half-deleted
 * or half-written one.
 */
export async function buildCli(outdir = `${cliDir}dist`) {
  const fresh = `${outdir}.new-${process.pid}`;
  const old = `${outdir}.old-${process.pid}`;
  await rm(fresh, { recursive: true, force: true });
  await mkdir(fresh, { recursive: true });
  const [, unbuilt] = await Promise.all([build({
    ...common,
    // unpack-worker: the thread that extracts a large pulled layer (runtime/src/layer/unpack.ts
    // finds it beside the chunks).
    entryPoints: { mstage: `${cliDir}src/main.ts`, api: `${cliDir}src/index.ts`, "unpack-worker": `${cliDir}../runtime/src/layer/unpack-worker.ts` },
    outdir: fresh,
  }), buildListdir(join(fresh, LISTDIR_ADDON))]);
  if (unbuilt) console.warn(`mstage build: without the native directory lister (plans of large local sources list with Node's fs instead): ${unbuilt}`);
  await rename(outdir, old).catch((e) => {
    if (e.code !== "ENOENT") throw e;
  });
  await rename(fresh, outdir);
  await rm(old, { recursive: true, force: true });
}

/** The native lister's file name, as packages/core/src/local/walk-pool.ts looks for it beside the bundle. */
export const LISTDIR_ADDON = `listdir.${process.platform}-${process.arch}.node`;

/**
 * Compiles packages/core/native/listdir.c into `out` with the system's C compiler and the headers of
 * the Node running this. N-API keeps the binary good for every later Node. Answers why not, where it
 * cannot (no compiler, no headers): mstage then lists with Node's fs, as on platforms it was not
 * built for.
 */
export async function buildListdir(out) {
  const include = join(dirname(process.execPath), "..", "include", "node");
  if (!existsSync(join(include, "node_api.h"))) return `no Node headers at ${include}`;
  const source = fileURLToPath(new URL("../packages/core/native/listdir.c", import.meta.url));
  const cc = process.env.CC || "cc";
  // -ffp-contract=off: mtimeMs must be Node's own sec * 1e3 + nsec / 1e6, never a fused multiply-add.
  const args = ["-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-shared", "-fPIC", "-I", include, "-o", out, source];
  try {
    await promisify(execFile)(cc, args);
  } catch (e) {
    return e.code === "ENOENT" ? `no C compiler (${cc}; on Debian: apt-get install gcc libc6-dev)` : `${cc} failed: ${(e.stderr || e.message).trim()}`;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildCli();
