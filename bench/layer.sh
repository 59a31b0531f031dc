#!/usr/bin/env bash
# Layer commit speed: mstage's commit (reproducible tar + sha256 + blob written and fsynced into a
# store) next to `tar -c | sha256sum` and `tar -c | gzip -1` on the same tree, in one run.
# The tree is a Debian bookworm rootfs with a toolchain (≥ 1 GiB, ≥ 30 000 files), made once with
# mmdebstrap and cached under .bench/. Targets: commit ≥ 0.8× the speed of tar|sha256sum, peak RSS
# ≤ 200 MB.
#   bash bench/layer.sh            (as root, or as a user with a subordinate id range)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# The rootfs holds files of many ids; like mstage itself, do everything inside a user namespace.
if [ "$(id -u)" != 0 ]; then
  exec unshare --map-auto --map-root-user --mount -- bash "$0" "$@"
fi

cache=$repo/.bench
rootfs=$cache/layer-rootfs
packages=build-essential,git,python3,clang,gdb,libboost-dev
mkdir -p "$cache"
if [ ! -e "$rootfs/.mstage-bench-done" ]; then
  echo "making the test tree (once): mmdebstrap bookworm with $packages …" >&2
  rm -rf "$rootfs"
  mmdebstrap --mode=root --variant=minbase --skip=output/dev --include="$packages" \
    bookworm "$rootfs" http://deb.debian.org/debian >&2
  touch "$rootfs/.mstage-bench-done"
fi

files=$(find "$rootfs" -xdev | wc -l)
bytes=$(du -sb --apparent-size "$rootfs" | cut -f1)
printf 'tree: %s, %s entries, %s MiB\n' "$rootfs" "$files" $((bytes / 1048576))

work=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat >"$work/commit.mts" <<EOF
import { Store } from "$repo/packages/runtime/src/store/store.ts";
import { commitLayerToStore } from "$repo/packages/runtime/src/layer/commit.ts";
const store = await Store.open(process.argv[2]);
const t = performance.now();
const layer = await commitLayerToStore(store, process.argv[3], { sourceDateEpoch: 0 });
const s = (performance.now() - t) / 1000;
console.log(\`mstage commit: \${layer.diffId} \${(layer.size / 1048576).toFixed(0)} MiB in \${s.toFixed(2)} s\`);
EOF

# Warm the page cache so every contender reads from memory.
tar -C "$rootfs" -cf - . | cat >/dev/null

measure() { # VAR NAME CMD…: prints wall seconds and peak RSS, sets VAR_secs and VAR_rss
  local var=$1 name=$2
  shift 2
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
    cat "$work/err" >&2
    return 1
  }
  read -r secs rss <"$work/time"
  printf '%-22s %7.2f s   peak RSS %6d MB   %s\n' "$name" "$secs" $((rss / 1024)) "$(tail -1 "$work/out")"
  printf -v "${var}_secs" %s "$secs"
  printf -v "${var}_rss" %s "$rss"
}

echo
measure sha "tar | sha256sum" bash -c "tar -C '$rootfs' -cf - . | sha256sum"
measure gzip "tar | gzip -1" bash -c "tar -C '$rootfs' -cf - . | gzip -1 | wc -c"
measure commit "mstage commit" node --import tsx "$work/commit.mts" "$work/store" "$rootfs"

echo
awk -v t="$sha_secs" -v m="$commit_secs" -v rss="$commit_rss" 'BEGIN {
  ratio = t / m
  printf "commit speed vs tar|sha256sum: %.2fx (target >= 0.80) %s\n", ratio, ratio >= 0.8 ? "ok" : "MISSED"
  printf "commit peak RSS: %d MB (target <= 200) %s\n", rss / 1024, rss / 1024 <= 200 ? "ok" : "MISSED"
}'
