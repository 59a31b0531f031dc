// Makes the publishable `mstage` tarball (pnpm pack:mstage):
//   node scripts/pack.mjs [--out DIR]     writes DIR/mstage-<version>.tgz (default: the repo root)
// The CLI and the internal packages are bundled into dist/ (scripts/build.mjs), the public types
// into dist/index.d.ts (scripts/types.mjs); the tarball's package.json keeps only what an install
// needs: registry dependencies, no workspace links, no dev dependencies, files limited to bin/ and dist/.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildCli } from "./build.mjs";
import { writeTypes } from "./types.mjs";

const repo = fileURLToPath(new URL("..", import.meta.url));
const cliDir = join(repo, "packages/cli");
const outFlag = process.argv.indexOf("--out");
const outDir = resolve(outFlag > 0 ? process.argv[outFlag + 1] : repo);

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.status})`);
  return r.stdout;
}

/** The published manifest, derived from packages/cli/package.json. */
export function publishedManifest(pkg) {
  const dependencies = Object.fromEntries(
    Object.entries(pkg.dependencies ?? {}).filter(([, spec]) => !String(spec).startsWith("workspace:")),
  );
  const { devDependencies: _dev, scripts: _scripts, ...rest } = pkg;
  return { ...rest, dependencies };
}

const pkg = JSON.parse(readFileSync(join(cliDir, "package.json"), "utf8"));
// Built into a staging directory, not packages/cli/dist: tests running the workspace's CLI meanwhile
// keep their files.
const stage = mkdtempSync(join(tmpdir(), "mstage-pack-"));
try {
  await buildCli(join(stage, "dist"));
  writeTypes(join(stage, "dist/index.d.ts"));
  cpSync(join(cliDir, "bin"), join(stage, "bin"), { recursive: true });
  cpSync(join(repo, "README.md"), join(stage, "README.md"));
  writeFileSync(join(stage, "package.json"), JSON.stringify(publishedManifest(pkg), null, 2) + "\n");
  const [packed] = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", outDir], stage));
  console.log(join(outDir, packed.filename));
} finally {
  rmSync(stage, { recursive: true, force: true });
}
