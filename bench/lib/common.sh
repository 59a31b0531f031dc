# Shared by bench/compare.sh and its cases: paths, the tools' command lines, timing in alternating
# rounds, the statistics printed per case, and the targets of issue 16. Sourced, never run.
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
W=${MSTAGE_BENCH_DIR:-$REPO/.bench/compare}
RESULTS=$W/results
mkdir -p "$W" "$RESULTS"

# NODE_EXTRA_CA_CERTS costs ~36 ms per Node start on this machine and is no part of mstage.
MSTAGE_BIN=$REPO/packages/cli/bin/mstage.mjs
mstage() { env -u NODE_EXTRA_CA_CERTS node "$MSTAGE_BIN" "$@"; }

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "== $*"; }
load() { uptime | sed 's/.*load average: //'; }

# One run at a time per bench dir: its cases share the registry port, dockerd and the stores.
exec 9>"$W/.lock"
flock -n 9 || die "another bench run holds $W/.lock"
one_minute_load() { cut -d' ' -f1 /proc/loadavg; }

# ---- timing ----------------------------------------------------------------------------------

# timed VAR LOG CMD…: runs CMD with its output appended to LOG, sets VAR to its wall seconds.
timed() {
  local -n _secs=$1
  local log=$2 t0 t1
  shift 2
  t0=$EPOCHREALTIME
  if ! "$@" >>"$log" 2>&1; then
    echo "bench: failed: $* (last lines of $log:)" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
  t1=$EPOCHREALTIME
  _secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}

# rounds CASE N TOOL…: N rounds, each running every TOOL once in the order given (A B A B …), so a
# change in the machine's load lands on all tools alike. A tool is two functions named after the
# case with dashes as underscores: `<case>__<tool>` (timed) and optionally `<case>__<tool>__prep`
# (untimed, run just before it: caches wiped, a file edited). Each time goes to RESULTS/CASE.TOOL.
rounds() {
  local case=$1 n=$2 fn tool i secs before
  shift 2
  fn=${case//-/_}
  set -- $(unskipped "$@")
  for tool in "$@"; do : >"$RESULTS/$case.$tool"; done
  for ((i = 1; i <= n; i++)); do
    for tool in "$@"; do
      if declare -F "${fn}__${tool//-/_}__prep" >/dev/null; then
        "${fn}__${tool//-/_}__prep" >>"$W/$case.log" 2>&1 || die "$case: preparing $tool failed (see $W/$case.log)"
      fi
      # Every run starts with nothing dirty in the page cache: mstage's one syncfs would otherwise
      # also write out what the tool before it wrote and never synced. A case that sets SETTLE
      # (the cold ones) also has every run start on a disk at rest (settle_disk).
      if [[ -n ${SETTLE:-} ]]; then settle_disk; else sync; fi
      before=$(disk_counters)
      timed secs "$W/$case.log" "${fn}__${tool//-/_}" || die "$case: $tool failed in round $i"
      echo "$secs" >>"$RESULTS/$case.$tool"
      printf '   round %d %-12s %8.3f s  %s%s\n' "$i" "$tool" "$secs" "$(disk_delta "$before" "$(disk_counters)")" "${SETTLED:+  $SETTLED}"
    done
  done
  empty_trash
}

# ---- the disk ----------------------------------------------------------------------------------
# The bench dir's block device (for /proc/diskstats) and what it did during a run: MB written and
# discarded (the counters are the whole device's, so another process's I/O shows too).
BENCH_DEV=$(basename "$(df --output=source "$W" | tail -n 1)")
disk_counters() { awk -v d="$BENCH_DEV" '$3 == d { print $10, $17; f = 1 } END { if (!f) print "0 0" }' /proc/diskstats; }
disk_delta() { # BEFORE AFTER ("sectors-written sectors-discarded" each)
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    printf "(disk: wrote %d MB, discarded %d MB)", (y[1] - x[1]) / 2048, (y[2] - x[2]) / 2048 }'
}
# disk_activity: the device's I/O in flight, then its completed writes, discards and flushes with
# their sectors: a line that stays the same only while nothing is written, discarded or flushed.
# (Reads are left out: what is left of a run is its writeback and its deletes' discards, and
# another process's reads would keep the wait from ever ending.) Read in bash, no process a poll.
disk_activity() {
  local maj min name f
  while read -r maj min name f; do
    [[ $name == "$BENCH_DEV" ]] || continue
    read -r -a f <<<"$f"
    echo "${f[8]} ${f[4]} ${f[6]} ${f[11]:-} ${f[13]:-} ${f[15]:-}"
    return
  done </proc/diskstats
}
usecs() { echo "${EPOCHREALTIME/./}"; }

# await_disk_idle [QUIET_MS] [TIMEOUT_S]: returns once the bench dir's device has had no I/O in
# flight and none completed for QUIET_MS (default 1500), polling /proc/diskstats every 0.1 s (the
# kernel has no event for "idle"); after TIMEOUT_S (default 120) it stops waiting and says so on
# stderr. Sets DISK_WAIT to what it saw.
await_disk_idle() {
  local quiet=$((${1:-1500} * 1000)) timeout=$((${2:-120} * 1000000)) t0 since now last cur
  t0=$(usecs)
  since=$t0
  last=$(disk_activity)
  while :; do
    sleep 0.1
    now=$(usecs)
    cur=$(disk_activity)
    if [[ $cur != "$last" || ${cur%% *} != 0 ]]; then
      last=$cur
      since=$now
    elif ((now - since >= quiet)); then
      DISK_WAIT=$(printf 'disk idle after %d.%d s' $(((now - t0) / 1000000)) $(((now - t0) / 100000 % 10)))
      return 0
    fi
    if ((now - t0 >= timeout)); then
      DISK_WAIT="disk NOT idle after ${2:-120} s (in flight: ${cur%% *}), timed anyway"
      echo "bench: $DISK_WAIT" >&2
      return 0
    fi
  done
}

# settle_disk: the start of a cold case's timed run. What the runs before it left in the trash is
# deleted and synced, untimed, and the timer waits until the device is at rest (await_disk_idle),
# so no run pays for the deletes, discards or writeback of the one before it, whichever tool that
# was. Sets SETTLED to a note for the round's line: the MB deleted and how long the disk took.
settle_disk() {
  local t0 mb=0
  t0=$EPOCHREALTIME
  [[ -d $W/trash ]] && mb=$(du -sm "$W/trash" | cut -f1)
  empty_trash
  sync
  await_disk_idle
  SETTLED=$(awk -v a="$t0" -v b="$EPOCHREALTIME" -v mb="$mb" -v w="$DISK_WAIT" \
    'BEGIN { printf "[settle: deleted %d MB, %s, %.1f s in all]", mb, w, b - a }')
}

# trash PATH…: moves each PATH that exists out of the way at once, into $W/trash (the same file
# system), instead of deleting it. The root fs is mounted with `discard` (a VM's disk): a timed run
# right after an `rm -rf` of a 1–3 GB store ran slower each round (cp -a of the 970 MB base tree:
# 3.1 → 15.8 → 44 s with an rm -rf and sync between rounds), since the freed blocks' discards and
# the device's work on them overlap the run. Renamed, nothing is freed in the prep itself; a case
# with SETTLE deletes it before the next run and waits for the disk (settle_disk), the others
# after the case's last round (empty_trash, untimed, synced).
trash() {
  local p
  mkdir -p "$W/trash"
  for p in "$@"; do
    [[ -e $p ]] && mv "$p" "$(mktemp -d "$W/trash/XXXXXX")/"
  done
  return 0
}
empty_trash() {
  [[ -d $W/trash ]] || return 0
  rm -rf "$W/trash"
  sync
}

# MSTAGE_BENCH_SKIP="buildkit …": tools left out of every case (an engineer's run on a shared
# machine, where no dockerd may start); their medians and ratios are not printed.
skipped() { [[ " ${MSTAGE_BENCH_SKIP:-} " == *" $1 "* ]]; }
unskipped() { local t; for t in "$@"; do skipped "$t" || echo "$t"; done; }

# ---- statistics ------------------------------------------------------------------------------

# stats < numbers: "median min max" of the numbers on stdin.
stats() {
  sort -g | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "nan nan nan"; exit }
    m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    printf "%.4f %.4f %.4f\n", m, a[1], a[NR] }'
}

median_of() { stats <"$RESULTS/$1.$2" | cut -d' ' -f1; }

# ratios CASE A B: the per-round ratios A/B, one a line.
ratios() { paste "$RESULTS/$1.$2" "$RESULTS/$1.$3" | awk '$2 > 0 { printf "%.4f\n", $1 / $2 }'; }

# ---- targets (issue 16) ----------------------------------------------------------------------

# "CASE:TOOL:PEER" → the largest ratio TOOL/PEER that meets the target. Cases without an entry
# print "no target".
declare -A TARGET=(
  [cold-pull:mstage:buildkit]=0.8
  [cold-pull:mstage:buildah]=0.7
  [cold-pull-rootless:mstage:buildah]=0.7
  [cold-base-present:mstage:buildkit]=0.9
  [edit:mstage:buildkit]=0.9
  [service:mstage:buildah]=0.6
  [service:mstage-zstd:buildah]=0.3
  [commit:mstage:tar-openssl]=1.0
  [files-200k:mstage:git-status]=2.0
)

SUMMARY=$W/summary.txt

# verdict VALUE TARGET: "met" when VALUE ≤ TARGET, else "NOT MET".
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t ? "met" : "NOT MET") }'; }

# target_text VALUE TARGET UNIT: "target ≤ 0.8×: met", or "no target" when TARGET is empty.
target_text() {
  [[ -z $2 ]] && { echo "no target"; return; }
  echo "target ≤ $2$3: $(verdict "$1" "$2")"
}

# compare CASE TOOL PEER: prints the median of per-round ratios TOOL/PEER with its min–max, and
# the target; appends the same line to the summary.
compare() {
  local case=$1 tool=$2 peer=$3 med lo hi target line
  { skipped "$tool" || skipped "$peer"; } && return 0
  read -r med lo hi < <(ratios "$case" "$tool" "$peer" | stats)
  target=${TARGET[$case:$tool:$peer]:-}
  line=$(printf '%-18s %-12s / %-12s %5.2f× (%.2f–%.2f)  %s' "$case" "$tool" "$peer" \
    "$med" "$lo" "$hi" "$(target_text "$med" "$target" ×)")
  echo "  $line"
  echo "$line" >>"$SUMMARY"
}

# medians CASE TOOL…: each tool's median seconds with min–max, also in the summary.
medians() {
  local case=$1 tool med lo hi line
  shift
  for tool in $(unskipped "$@"); do
    read -r med lo hi < <(stats <"$RESULTS/$case.$tool")
    line=$(printf '%-18s %-12s median %8.3f s  (%.3f–%.3f, %d runs)' "$case" "$tool" "$med" "$lo" "$hi" "$(wc -l <"$RESULTS/$case.$tool")")
    echo "  $line"
    echo "$line" >>"$SUMMARY"
  done
}

# case_header CASE N / case_footer CASE: the load before and after, on screen and in the summary.
case_header() {
  CASE_LOAD_BEFORE=$(load)
  say "$1 ($2 rounds; load before: $CASE_LOAD_BEFORE; set-up took $(awk -v a="$CASE_T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s)"
  : >"$W/$1.log"
}
case_footer() {
  local after
  after=$(load)
  echo "  load after: $after"
  printf '%-18s load before %s, after %s\n' "$1" "$CASE_LOAD_BEFORE" "$after" >>"$SUMMARY"
}

# rewrite FROM_FILE TO_FILE OLD NEW [OLD NEW]…: a copy with each literal OLD replaced by NEW; fails
# when an OLD is not there (an example changed under the bench).
rewrite() {
  node - "$@" <<'JS' || die "rewriting $1 failed"
const fs = require("node:fs");
const [from, to, ...pairs] = process.argv.slice(2);
let text = fs.readFileSync(from, "utf8");
for (let i = 0; i < pairs.length; i += 2) {
  if (!text.includes(pairs[i])) throw new Error(`${from} has no ${JSON.stringify(pairs[i])}`);
  text = text.split(pairs[i]).join(pairs[i + 1]);
}
fs.writeFileSync(to, text);
JS
}
