// Runs every test file with node's test runner (TypeScript through tsx).
//   node scripts/test.mjs            unit tests beside the code, then end-to-end tests in test/
//   node scripts/test.mjs --unit     unit tests only
//   node scripts/test.mjs FILE…      just those files
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist" || name === "fixtures") continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const unitOnly = args.includes("--unit");
const explicit = args.filter((a) => !a.startsWith("--"));
const files = explicit.length
  ? explicit
  : [...find("packages"), ...(unitOnly ? [] : find("test"))].sort();

const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-reporter=spec", ...files],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
