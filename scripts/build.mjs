// Bundles the CLI (core + runtime + cli sources) into packages/cli/dist. Third-party packages stay
// external and resolve from packages/cli/node_modules at run time.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";

const cli = JSON.parse(readFileSync(new URL("../packages/cli/package.json", import.meta.url), "utf8"));
const external = Object.keys(cli.dependencies).filter((d) => !d.startsWith("@mstage/"));

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  external,
  logLevel: "warning",
  outExtension: { ".js": ".mjs" },
  // Commands are imported lazily; separate chunks keep a no-op `plan` from loading `up`'s code.
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  // Bundled CommonJS dependencies (none today) would need require(): give them one.
  banner: { js: "import { createRequire as __mstageCreateRequire } from 'node:module'; const require = __mstageCreateRequire(import.meta.url);" },
};

await rm("packages/cli/dist", { recursive: true, force: true });
await build({
  ...common,
  entryPoints: { mstage: "packages/cli/src/main.ts", api: "packages/cli/src/index.ts" },
  outdir: "packages/cli/dist",
});
