#!/usr/bin/env bash
# examples/hello-go with `mstage up` next to `buildah bud --layers` of the equivalent Dockerfile,
# on the same Debian+golang base (mstage's debian() rootfs, exported once and pulled into buildah's
# own storage), in one run: no-op rebuild, edit-rebuild (the greeting changes) and a cold build with
# the base present (no stage cache, no Go build cache). Prints times and ratios.
#   bash bench/up.sh            (after `pnpm build`; needs buildah, hyperfine; run as root or a user
#                                with a subordinate id range)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
W=${MSTAGE_BENCH_DIR:-$REPO/bench/.bench/up}
export MSTAGE_STORE=${MSTAGE_BENCH_STORE:-$W/store}
MSTAGE=(node "$REPO/packages/cli/bin/mstage.mjs")
BUILDAH=(buildah --root "$W/buildah/root" --runroot "$W/buildah/run" --storage-driver overlay)
for t in buildah skopeo hyperfine; do command -v "$t" >/dev/null || { echo "bench/up.sh needs $t" >&2; exit 1; }; done
[ -f packages/cli/dist/mstage.mjs ] || { echo "run pnpm build first" >&2; exit 1; }

mkdir -p "$W"
rm -rf "$W/hello" "$W/docker" "$W/base"
cp -r examples/hello-go "$W/hello"
rm -rf "$W/hello/oci" "$W/hello/.mstage"

# The same base for both: the debian() toolchain stage, written as an OCI image and pulled by buildah.
mkdir -p "$W/base"
cat >"$W/base/images.ts" <<'TS'
import { debian, stage } from "mstage";
export const toolchain = stage("toolchain", { from: debian({ suite: "bookworm", packages: ["golang-go"] }) });
TS
cp "$W/hello/images.lock" "$W/base/" 2>/dev/null || true
echo "== preparing the Debian+golang base (mmdebstrap once per store, then a gzip export for buildah)"
(cd "$W/base" && "${MSTAGE[@]}" up -q >/dev/null)
cp "$W/base/images.lock" "$W/hello/images.lock"
skopeo copy -q "oci:$W/base/oci:toolchain" "containers-storage:[overlay@$W/buildah/root+$W/buildah/run]localhost/mstage-bench/toolchain:latest"
mkdir -p "$W/docker"
cp "$W/hello/go.mod" "$W/hello/main.go" "$W/docker/"
cat >"$W/docker/Dockerfile" <<'DOCKERFILE'
FROM localhost/mstage-bench/toolchain AS build
WORKDIR /src
COPY go.mod main.go /src/
ENV CGO_ENABLED=0 GOCACHE=/root/.cache/go-build GOFLAGS=-trimpath
RUN --mount=type=cache,target=/root/.cache/go-build go build -ldflags='-s -w -buildid=' -o /out/hello .

FROM scratch
COPY --from=build /out/hello /hello
CMD ["/hello"]
DOCKERFILE

BUD=("${BUILDAH[@]}" bud --layers --isolation chroot -q -t localhost/mstage-bench/hello "$W/docker")
UP=("${MSTAGE[@]}" -f "$W/hello/images.ts" up -q)
# Each edit-rebuild changes the greeting in both copies of main.go.
EDIT="n=\$(date +%s%N); sed -i \"s/Hello from mstage![^\\\"]*/Hello from mstage! \$n/\" $W/hello/main.go $W/docker/main.go"
WIPE_CACHES="rm -rf $MSTAGE_STORE/caches/go-build /var/tmp/buildah-cache /var/tmp/buildah-cache-$(id -u)"

echo "== warming both caches"
"${UP[@]}" >/dev/null
"${BUD[@]}" >/dev/null

json() { node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results[0].mean)' "$1"; }
run() { # name runs prepare cmd...
  local name=$1 runs=$2 prepare=$3; shift 3
  hyperfine --style basic --runs "$runs" ${prepare:+--prepare "$prepare"} --export-json "$W/$name.json" "$(printf '%q ' "$@")" >/dev/null
  json "$W/$name.json"
}

echo "== no-op rebuild (mean of 10)"
noop_m=$(run noop-mstage 10 "" "${UP[@]}")
noop_b=$(run noop-buildah 10 "" "${BUD[@]}")
echo "== edit-rebuild (mean of 5, the greeting changes before each run)"
edit_m=$(run edit-mstage 5 "$EDIT" "${UP[@]}")
edit_b=$(run edit-buildah 5 "$EDIT" "${BUD[@]}")
echo "== cold build with the base present (mean of 3: no stage cache, no Go build cache)"
cold_m=$(run cold-mstage 3 "$WIPE_CACHES" "${MSTAGE[@]}" -f "$W/hello/images.ts" up -q --no-cache)
cold_b=$(run cold-buildah 3 "$WIPE_CACHES" "${BUILDAH[@]}" bud --layers --no-cache --isolation chroot -q -t localhost/mstage-bench/hello "$W/docker")

node - "$noop_m" "$noop_b" "$edit_m" "$edit_b" "$cold_m" "$cold_b" <<'JS'
const [nm, nb, em, eb, cm, cb] = process.argv.slice(2).map(Number);
const row = (what, m, b, target, ok) =>
  console.log(`${what.padEnd(14)} mstage ${m.toFixed(3)} s   buildah ${b.toFixed(3)} s   ratio ${(m / b).toFixed(2)}×   target ${target}: ${ok ? "met" : "MISSED"}`);
row("no-op", nm, nb, "≤ 0.25× (≥ 4× faster)", nm * 4 <= nb);
row("edit-rebuild", em, eb, "≤ 0.7×", em <= 0.7 * eb);
row("cold", cm, cb, "≤ 1×", cm <= cb);
JS
