#!/usr/bin/env bash
# Times `mstage plan` next to `node -e 0` in the same run:
#   - a generated project of 200 stages over 20 000 local files (about 200 MB):
#     cold plan (empty stat cache and compile cache) and warm no-op plan;
#   - a one-stage project: warm no-op plan.
# Targets (issue 2): warm big plan within 10x `node -e 0`, warm one-stage plan within 3x.
# Usage: bash bench/plan.sh            (needs hyperfine and a built CLI: pnpm build)
# The generated project is cached in $BENCH_DIR (default .bench/plan) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${MSTAGE_BIN:-}
dir=${BENCH_DIR:-$root/.bench/plan}
big=$dir/big
one=$dir/one
export MSTAGE_STORE=$dir/store
command -v hyperfine >/dev/null || { echo "bench/plan.sh needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
if [ -z "$bin" ]; then
  [ -f "$root/packages/cli/dist/mstage.mjs" ] || { echo "build the CLI first: pnpm build" >&2; exit 1; }
  # Time a snapshot of the built CLI: a `pnpm build` elsewhere (another checkout user's tests)
  # empties dist/ while it runs. Kept under packages/cli/node_modules so its imports resolve.
  snap=$root/packages/cli/node_modules/.mstage-bench-cli
  rm -rf "$snap" && mkdir -p "$snap" && cp -r "$root/packages/cli/bin" "$root/packages/cli/dist" "$snap/"
  bin=$snap/bin/mstage.mjs
fi

if [ ! -f "$big/.generated" ]; then
  echo "generating 200 stages x 100 files x 10 KiB in $big ..."
  rm -rf "$big" && mkdir -p "$big"
  node - "$big" <<'JS'
const { mkdirSync, writeFileSync } = require("node:fs");
const { randomBytes } = require("node:crypto");
const dir = process.argv[2];
const stages = [];
for (let i = 0; i < 200; i++) {
  const d = `${dir}/src/d${String(i).padStart(3, "0")}`;
  mkdirSync(`${d}/sub`, { recursive: true });
  for (let f = 0; f < 100; f++) writeFileSync(`${d}/${f < 50 ? "" : "sub/"}f${f}.bin`, randomBytes(10240));
  // Every tenth stage starts a chain; the others build on the previous stage.
  const from = i % 10 === 0 ? `scratch()` : `s[${i - 1}]`;
  stages.push(`s.push(stage("s${i}", { from: ${from}, copy: { "/data/${i}": local("./src/d${String(i).padStart(3, "0")}") } }));`);
}
writeFileSync(`${dir}/images.ts`, `import { stage, scratch, local, type Stage } from "mstage";\nconst s: Stage[] = [];\n${stages.join("\n")}\nexport const all = s;\n`);
JS
  touch "$big/.generated"
fi
mkdir -p "$one"
cat >"$one/images.ts" <<'TS'
import { stage, scratch, local } from "mstage";
export const app = stage("app", { from: scratch(), copy: { "/app/main.go": local("./main.go") }, cmd: ["/app/main"] });
TS
echo 'package main' >"$one/main.go"

files=$(find "$big/src" -type f | wc -l)
size=$(du -sm "$big/src" | cut -f1)
echo "big project: 200 stages, $files files, ${size} MB; node $(node --version); $(nproc) CPUs"

# Build both projects with a real `up` (a no-op once the store and state have them), so the warm
# plans below are true no-ops: every stage "= cached". "Cold" empties the stat and compile caches only.
node "$bin" up -q -f "$big/images.ts" >/dev/null
node "$bin" up -q -f "$one/images.ts" >/dev/null

hyperfine -N --runs 5 --prepare "rm -rf $MSTAGE_STORE/stat-cache $big/.mstage/config-images.ts.json" \
  -n cold-plan-200 "node $bin plan -q -f $big/images.ts" \
  --export-json "$dir/cold.json" >/dev/null
node "$bin" plan -f "$big/images.ts" | tail -1
node "$bin" plan -f "$one/images.ts" | tail -1
hyperfine -N --warmup 3 --runs 20 \
  -n "node -e 0" "node -e 0" \
  -n warm-plan-200 "node $bin plan -q -f $big/images.ts" \
  -n warm-plan-1 "node $bin plan -q -f $one/images.ts" \
  --export-json "$dir/warm.json" >/dev/null

node - "$dir/cold.json" "$dir/warm.json" <<'JS'
const fs = require("node:fs");
const r = {};
for (const f of process.argv.slice(2)) for (const x of JSON.parse(fs.readFileSync(f, "utf8")).results) r[x.command] = x;
// Wall time is what users feel; CPU time (user+sys) is steadier on a shared, loaded machine.
const base = r["node -e 0"].median;
const cpu = (x) => x.user + x.system;
const baseCpu = cpu(r["node -e 0"]);
const ms = (s) => (s * 1000).toFixed(0).padStart(6) + " ms";
const row = (name, target) => {
  const x = r[name];
  const ratio = x.median / base;
  const cpuRatio = cpu(x) / baseCpu;
  const verdict = target ? (ratio <= target ? `ok (target ${target}x)` : `OVER target ${target}x`) : "";
  console.log(`${name.padEnd(15)} wall median ${ms(x.median)} ±${ms(x.stddev)} = ${ratio.toFixed(2).padStart(5)}x | cpu ${ms(cpu(x))} = ${cpuRatio.toFixed(2).padStart(5)}x  ${verdict}`);
};
console.log(`${"node -e 0".padEnd(15)} wall median ${ms(base)}            | cpu ${ms(baseCpu)}   load average: ${require("node:os").loadavg()[0].toFixed(1)}`);
row("cold-plan-200");
row("warm-plan-200", 10);
row("warm-plan-1", 3);
JS
