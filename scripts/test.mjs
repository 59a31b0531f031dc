// Runs every test file with node's test runner (TypeScript through tsx).
//   node scripts/test.mjs            unit tests beside the code, then end-to-end tests in test/
//   node scripts/test.mjs --unit     unit tests only
//   node scripts/test.mjs FILE…      just those files
import { chmodSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { availableParallelism, tmpdir } from "node:os";
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

// Every temporary file of the run goes under one directory, removed at the end: tests make tens of
// thousands of projects and stores, and the ones a failed or killed test left grew /tmp by gigabytes
// per run. Sticky and world-writable like /tmp, since tests also run the CLI as the test users.
// The per-user cache of base rootfses and stores (test/helpers/rootfs.ts) stays in the real temp
// directory, so only a machine's first run pays for it.
// Short and lower-case: buildah and podman refuse a runroot of over 50 characters, and buildah takes
// a lower-case path as an image name (test/helpers/buildah.ts).
const realTmp = tmpdir();
const runTmp = join(realTmp, `mt${randomBytes(3).toString("hex")}`);
mkdirSync(runTmp, { mode: 0o700 });
chmodSync(runTmp, 0o1777);
const env = { ...process.env, TMPDIR: runTmp, MSTAGE_TEST_CACHE_ROOT: process.env.MSTAGE_TEST_CACHE_ROOT ?? realTmp };

// Two test files at a time even on two cores: node's default (cores - 1) runs one, and most of a file's
// time is spent waiting on sandboxes, registries, syncs and child processes, not on this CPU. Measured
// on 2 cores: the suite 828 s with one file at a time, 488 s with two.
const concurrency = Math.max(2, availableParallelism() - 1);

let status;
try {
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-reporter=spec", ...files],
    { stdio: "inherit", env },
  );
  status = r.status ?? 1;
} finally {
  if (process.env.MSTAGE_KEEP_TEST_TMP) console.error(`test temp files kept in ${runTmp}`);
  else rmSync(runTmp, { recursive: true, force: true, maxRetries: 3 });
}
process.exit(status);
