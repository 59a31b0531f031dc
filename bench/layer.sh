#!/usr/bin/env bash
# Layer commit speed: mstage's commit next to `tar -c | sha256sum` and `tar -c | gzip -1` on the
# same tree, in one run. The tree is a Debian bookworm rootfs with a toolchain (≥ 1 GiB, ≥ 30 000
# files), made once with mmdebstrap and cached under .bench/. Targets: commit ≥ 0.8× the speed of
# tar|sha256sum, peak RSS ≤ 200 MB.
#   bash bench/layer.sh            (as root, or as a user with a subordinate id range)
#
# Two mstage figures: "tar+digest" is commitLayer's tar stream hashed, nothing written (what the
# target compares); "commit to store" is commitLayerToStore, which also writes the blob into a store
# and fsyncs it, as `mstage up` does. On a shared machine the CPU column is the steadier comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# The rootfs holds files of many ids; like mstage itself, do everything inside a user namespace.
if [ "$(id -u)" != 0 ]; then
  exec unshare --map-auto --map-root-user --mount -- bash "$0" "$@"
fi

cache=$repo/.bench
packages=build-essential,git,python3,clang,gdb,libboost-dev,golang-go
rootfs=$cache/layer-rootfs-$(echo "$packages" | sha256sum | cut -c1-8)
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
printf 'tree: %s, %s entries, %s MiB; %s CPUs, load %s\n' "$rootfs" "$files" $((bytes / 1048576)) "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"

work=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The driver is bundled like the mstage CLI (no TypeScript loader inside the measurement).
cat >"$work/commit.mts" <<EOF
import { createHash } from "node:crypto";
import { Store } from "$repo/packages/runtime/src/store/store.ts";
import { commitLayer, commitLayerToStore } from "$repo/packages/runtime/src/layer/commit.ts";
const [mode, dir, storeDir] = process.argv.slice(2);
// extract: argv = extract - STORE DIFFID
const t = performance.now();
let what;
if (mode === "digest") {
  const h = createHash("sha256");
  let n = 0;
  for await (const c of commitLayer(dir, { sourceDateEpoch: 0 })) (h.update(c), (n += c.length));
  what = "sha256:" + h.digest("hex") + " " + (n / 1048576).toFixed(0) + " MiB";
} else if (mode === "extract") {
  const store = await Store.open(storeDir);
  const diffId = process.argv[5];
  const layerDir = await store.ensureLayerExtracted(diffId);
  what = "extracted to " + layerDir;
} else {
  const store = await Store.open(storeDir);
  const layer = await commitLayerToStore(store, dir, { sourceDateEpoch: 0 });
  what = layer.diffId + " " + (layer.size / 1048576).toFixed(0) + " MiB";
}
console.log(what + " in " + ((performance.now() - t) / 1000).toFixed(2) + " s");
EOF
"$repo/node_modules/esbuild/bin/esbuild" "$work/commit.mts" --bundle --platform=node --format=esm --log-level=warning \
  --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" \
  --outfile="$work/commit.mjs"

# Warm the page cache so every contender reads from memory.
tar -C "$rootfs" -cf - . | cat >/dev/null

measure() { # VAR NAME CMD…: prints wall and CPU seconds and peak RSS; sets VAR_secs, VAR_cpu, VAR_rss
  local var=$1 name=$2
  shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
    cat "$work/err" >&2
    return 1
  }
  local secs user sys rss cpu
  read -r secs user sys rss <"$work/time"
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  printf '%-24s wall %6.2f s  cpu %6.2f s  peak RSS %4d MB  %s\n' "$name" "$secs" "$cpu" $((rss / 1024)) "$(tail -1 "$work/out")"
  printf -v "${var}_secs" %s "$secs"
  printf -v "${var}_cpu" %s "$cpu"
  printf -v "${var}_rss" %s "$rss"
}

echo
measure sha "tar | sha256sum" bash -c "tar -C '$rootfs' -cf - . | sha256sum"
measure gzip "tar | gzip -1" bash -c "tar -C '$rootfs' -cf - . | gzip -1 | wc -c"
measure digest "mstage tar+digest" node "$work/commit.mjs" digest "$rootfs"
measure commit "mstage commit to store" node "$work/commit.mjs" store "$rootfs" "$work/store"
# Not a target, for reference: applying that layer back (as a lower dir) next to GNU tar -x.
diffid=$(tail -1 "$work/out" | cut -d' ' -f1)
mkdir "$work/tar-x"
measure untar "tar -x" tar -xf "$work/store/blobs/sha256/${diffid#sha256:}" -C "$work/tar-x"
measure extract "mstage extract" node "$work/commit.mjs" extract - "$work/store" "$diffid"

echo
awk -v t="$sha_secs" -v tc="$sha_cpu" -v d="$digest_secs" -v dc="$digest_cpu" -v m="$commit_secs" -v mc="$commit_cpu" -v rss="$commit_rss" 'BEGIN {
  printf "tar+digest vs tar|sha256sum:      %.2fx wall, %.2fx cpu (target >= 0.80) %s\n", t / d, tc / dc, (t / d >= 0.8) ? "ok" : "MISSED"
  printf "commit to store vs tar|sha256sum: %.2fx wall, %.2fx cpu (also writes and fsyncs the blob)\n", t / m, tc / mc
  printf "commit peak RSS: %d MB (target <= 200) %s\n", rss / 1024, (rss / 1024 <= 200) ? "ok" : "MISSED"
}'
