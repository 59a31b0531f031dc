#!/usr/bin/env bash
# Watch-mode latency: from a file save to the rebuild's start and to the new output, for a stage
# whose step is trivial, next to a no-op `mstage up` of the same project in the same run.
# Targets (issue 6): rebuild starts ≤ 150 ms after the save; new output ≤ 2× no-op up + the step.
#   bash bench/watch.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
pnpm -s build
work=$(mktemp -d /tmp/mstage-bench-watch.XXXXXX)
trap 'unshare --map-auto --map-root-user rm -rf "$work" 2>/dev/null || rm -rf "$work"' EXIT
cp -r test/fixtures/watch-basic "$work/project"
export MSTAGE_STORE="$work/store"
mstage=(node "$PWD/packages/cli/bin/mstage.mjs")

(cd "$work/project" && "${mstage[@]}" up -q >/dev/null)
noop_ms=$(cd "$work/project" && node -e '
const { spawnSync } = require("node:child_process");
const argv = process.argv.slice(1);
const t = [];
for (let i = 0; i < 5; i++) { const t0 = performance.now(); spawnSync(argv[0], argv.slice(1), { stdio: "ignore" }); t.push(performance.now() - t0); }
t.sort((a, b) => a - b); console.log(Math.round(t[2]));' "${mstage[@]}" up -q)

node bench/watch-latency.mjs "$work/project" "$rounds" "$noop_ms" "${mstage[@]}"
