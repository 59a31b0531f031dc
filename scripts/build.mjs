// Bundles the CLI (core + runtime + cli sources) into packages/cli/dist. Third-party packages stay
// external and resolve from packages/cli/node_modules at run time (or, installed from the
// tarball that scripts/pack.mjs makes, from the registry dependencies npm installed beside it).
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";

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
  await build({
    ...common,
    // unpack-worker: the thread that extracts a large pulled layer (runtime/src/layer/unpack.ts
    // finds it beside the chunks).
    entryPoints: { mstage: `${cliDir}src/main.ts`, api: `${cliDir}src/index.ts`, "unpack-worker": `${cliDir}../runtime/src/layer/unpack-worker.ts` },
    outdir: fresh,
  });
  await rename(outdir, old).catch((e) => {
    if (e.code !== "ENOENT") throw e;
  });
  await rename(fresh, outdir);
  await rm(old, { recursive: true, force: true });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildCli();
