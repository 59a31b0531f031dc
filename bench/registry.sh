#!/usr/bin/env bash
# Times mstage's registry client next to `skopeo copy` on the same ≥ 300 MB image, in one run:
#   push: OCI layout → a fresh docker-registry on loopback
#   pull: registry → local storage (mstage: its content-addressed store; skopeo: an OCI layout)
# Each direction runs ROUNDS times per tool against a registry with empty storage, alternating tools.
# Usage: bench/registry.sh [ROUNDS]   (env MB: uncompressed image size, default 360, about 320 MB compressed)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${1:-3}
MB=${MB:-360}
W=$(mktemp -d /tmp/mstage-bench-registry.XXXXXX)
REG_PID=
cleanup() {
  [[ -n $REG_PID ]] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  [[ -n ${KEEP:-} ]] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT

# The client side of mstage, driven through its runtime API (there is no `mstage push` of a layout).
cat >"$W/client.mts" <<'EOF'
import { readFileSync, createReadStream } from "node:fs";
import { join } from "node:path";
import * as rt from "@mstage/runtime";
const [cmd, layout, ref, storeDir] = process.argv.slice(2) as [string, string, string, string?];
const client = new rt.RegistryClient();
try {
  if (cmd === "push") {
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    const desc = index.manifests[0];
    const blob = (d: string) => join(layout, "blobs", "sha256", d.slice(7));
    const bytes = readFileSync(blob(desc.digest));
    const m = JSON.parse(bytes.toString("utf8"));
    const res = await rt.pushImage({
      ref, client,
      manifest: { bytes, mediaType: desc.mediaType },
      config: { digest: rt.parseDigest(m.config.digest), size: m.config.size },
      layers: m.layers.map((l: { digest: string; size: number }) => ({ digest: rt.parseDigest(l.digest), size: l.size })),
      source: { openBlob: (d: string) => createReadStream(blob(d), { highWaterMark: 1 << 20 }) },
    });
    if (res.digest !== desc.digest) throw new Error(`pushed ${res.digest}, want ${desc.digest}`);
  } else {
    const store = await rt.Store.open(storeDir!);
    await rt.pullImage(ref, { store, client });
  }
} finally {
  await client.close();
}
EOF

# A test image: half random (incompressible) data, half compressible text, in four layers.
make_image() {
  local src=$W/src
  mkdir -p "$src/blobs/sha256"
  local per=$((MB / 4)) diffs=() layers=()
  for i in 0 1 2 3; do
    mkdir -p "$W/l$i/data"
    if ((i % 2 == 0)); then
      head -c "${per}M" /dev/urandom >"$W/l$i/data/random$i"
    else
      head -c "$((per * 3 / 4))M" /dev/urandom | base64 >"$W/l$i/data/text$i"
    fi
    tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$W/l$i" -cf "$W/l$i.tar" .
    diffs+=("sha256:$(sha256sum <"$W/l$i.tar" | cut -d' ' -f1)")
    gzip -1 -c "$W/l$i.tar" >"$W/l$i.tgz"
    local d; d=$(sha256sum <"$W/l$i.tgz" | cut -d' ' -f1)
    mv "$W/l$i.tgz" "$src/blobs/sha256/$d"
    layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$(stat -c %s "$src/blobs/sha256/$d")}")
    rm -rf "$W/l$i" "$W/l$i.tar"
  done
  local diffjson; diffjson=$(printf '"%s",' "${diffs[@]}"); diffjson=${diffjson%,}
  printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diffjson" >"$W/config.json"
  local cd; cd=$(sha256sum <"$W/config.json" | cut -d' ' -f1)
  mv "$W/config.json" "$src/blobs/sha256/$cd"
  local layerjson; layerjson=$(IFS=,; echo "${layers[*]}")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$cd" "$(stat -c %s "$src/blobs/sha256/$cd")" "$layerjson" >"$W/manifest.json"
  local md; md=$(sha256sum <"$W/manifest.json" | cut -d' ' -f1)
  local ms; ms=$(stat -c %s "$W/manifest.json")
  mv "$W/manifest.json" "$src/blobs/sha256/$md"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$src/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' "$md" "$ms" >"$src/index.json"
}

start_registry() {
  [[ -n $REG_PID ]] && { kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; }
  rm -rf "$W/reg"; mkdir -p "$W/reg"
  PORT=$(node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  cat >"$W/reg/config.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $W/reg/data } }
http: { addr: 127.0.0.1:$PORT, secret: bench }
YAML
  /usr/bin/docker-registry serve "$W/reg/config.yml" 2>>"$W/registry.log" &
  REG_PID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/" && return; sleep 0.05; done
  echo "registry did not start" >&2; exit 1
}

now() { date +%s.%N; }
timeit() { local t0; t0=$(now); "$@" >/dev/null || { echo "failed: $*" >&2; return 1; }; echo "$(now) - $t0" | bc; }
mstage_client() { node "$W/client.mjs" "$@"; }

# Bundled like the shipped CLI (scripts/build.mjs), so the timing includes a realistic startup.
node -e '
  const esbuild = require("esbuild");
  esbuild.buildSync({ entryPoints: [process.argv[1]], outfile: process.argv[2], bundle: true, platform: "node",
    format: "esm", target: "node20", logLevel: "error",
    alias: { "@mstage/runtime": "./packages/runtime/src/index.ts", "@mstage/core": "./packages/core/src/index.ts" },
    banner: { js: "import { createRequire as __cr } from \"node:module\"; const require = __cr(import.meta.url);" } });
' "$W/client.mts" "$W/client.mjs"

make_image
SIZE=$(du -sm "$W/src/blobs" | cut -f1)
echo "image: $SIZE MB compressed in $W/src ($(nproc) CPUs)"

declare -a PUSH_M PUSH_S PULL_M PULL_S
for r in $(seq "$ROUNDS"); do
  # push, each tool into an empty registry; then pull back what it pushed.
  start_registry
  t=$(timeit skopeo copy -q --dest-tls-verify=false "oci:$W/src:bench" "docker://127.0.0.1:$PORT/bench/img:1") || exit 1
  PUSH_S+=("$t")
  rm -rf "$W/pull-skopeo"
  t=$(timeit skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$PORT/bench/img:1" "oci:$W/pull-skopeo:img") || exit 1
  PULL_S+=("$t")
  start_registry
  t=$(timeit mstage_client push "$W/src" "127.0.0.1:$PORT/bench/img:1") || exit 1
  PUSH_M+=("$t")
  rm -rf "$W/store"
  t=$(timeit mstage_client pull "$W/src" "127.0.0.1:$PORT/bench/img:1" "$W/store") || exit 1
  PULL_M+=("$t")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
report() {
  local what=$1 m s; m=$(median "${@:2:$ROUNDS}"); s=$(median "${@:$((ROUNDS + 2))}")
  printf '%-5s mstage %6.2f s  skopeo %6.2f s  ratio %.2f  (%.0f MB/s vs %.0f MB/s)\n' "$what" "$m" "$s" "$(echo "$m / $s" | bc -l)" "$(echo "$SIZE / $m" | bc -l)" "$(echo "$SIZE / $s" | bc -l)"
}
echo "median of $ROUNDS rounds:"
report push "${PUSH_M[@]}" "${PUSH_S[@]}"
report pull "${PULL_M[@]}" "${PULL_S[@]}"
