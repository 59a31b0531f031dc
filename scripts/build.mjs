// Bundles the CLI (core + runtime + cli sources) into packages/cli/dist. Third-party packages stay
// external and resolve from packages/cli/node_modules at run time (or, installed from the
// tarball that scripts/pack.mjs makes, from the registry dependencies npm installed beside it).
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
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

/** Builds the CLI and the API module into `outdir` (default packages/cli/dist), replacing it. */
export async function buildCli(outdir = `${cliDir}dist`) {
  await rm(outdir, { recursive: true, force: true });
  await build({
    ...common,
    // unpack-worker: the thread that extracts a large pulled layer (runtime/src/layer/unpack.ts
    // finds it beside the chunks).
    entryPoints: { mstage: `${cliDir}src/main.ts`, api: `${cliDir}src/index.ts`, "unpack-worker": `${cliDir}../runtime/src/layer/unpack-worker.ts` },
    outdir,
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildCli();
