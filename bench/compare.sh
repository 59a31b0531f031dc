#!/usr/bin/env bash
# mstage next to BuildKit (Debian's docker.io, a dockerd of its own) and buildah on the same
# offline bases, in alternating rounds (mstage, then each peer, N times), printing per case each
# tool's median seconds, the median of per-round ratios mstage/peer with min–max, the target of
# issue 16 it answers (met / NOT MET), and the load before and after.
#
#   bash bench/compare.sh [-n ROUNDS] [-s SLOW_ROUNDS] [-p] [CASE…]   (as root, after `pnpm build`
#                                                                       and bash bench/setup.sh)
#   -p: only make each case's bases, projects and warm state, time nothing (before a quiet slot)
#
# Cases (all but cold-pull-rootless when none is named):
#   noop               hello-go rebuilt with nothing changed
#   edit               hello-go rebuilt after main.go changed
#   cold-base-present  hello-go with no stage cache and no Go build cache; the base is present
#   cold-pull          hello-go with the ~970 MB Debian+golang base pulled from a loopback registry;
#                      every cache and the base removed before each run, for every tool
#   cold-pull-rootless the same as mstage-test, mstage vs rootless buildah
#   service            examples/service on a local ~968 MB tarball base, cold, written as an OCI
#                      layout: mstage up (gzip, and zstd when --compression exists) vs buildah bud +
#                      buildah push oci: (gzip)
#   stages-2000        a generated project of 2000 stages without files, cold: per-stage overhead
#   files-200k         one stage over 200 000 local files: warm no-op plan vs git status --porcelain
#   commit             a ~1 GiB tree committed as a stage's layer vs tar -c | openssl dgst -sha256
#                      (and, as mstage-tar, with its tar written into the store)
#
# Env: MSTAGE_BENCH_DIR (default .bench/compare), STAGES (default 2000), FILES (default 200000),
# MSTAGE_BENCH_SKIP (tools to leave out, e.g. "buildkit": no dockerd is started for them).
# Every state is reached by a real `mstage up` / docker build / buildah bud. On a loaded machine
# the figures mean little: compare.sh prints the load so a reader can tell.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
source "$REPO/bench/lib/peers.sh"
source "$REPO/bench/lib/bases.sh"

# The quick ones first, while the load is what it was when the run started.
ALL_CASES=(noop edit files-200k commit cold-base-present cold-pull service stages-2000)
# Rounds per case; the cases whose one run takes a minute or more (cold-*, service, stages-2000)
# run SLOW_ROUNDS (default 3, never more than ROUNDS).
ROUNDS=5
SLOW_ROUNDS=
PREPARE_ONLY=
while getopts "n:s:ph" opt; do
  case $opt in
    n) ROUNDS=$OPTARG ;;
    s) SLOW_ROUNDS=$OPTARG ;;
    p) PREPARE_ONLY=1 ;;
    *) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
: "${SLOW_ROUNDS:=$((ROUNDS < 3 ? ROUNDS : 3))}"
CASES=("$@")
((${#CASES[@]})) || CASES=("${ALL_CASES[@]}")

[[ $(id -u) == 0 ]] || die "run as root (the rootless case switches to mstage-test itself)"
[[ -f $REPO/packages/cli/dist/mstage.mjs ]] || die "build the CLI first: pnpm build"
for t in buildah skopeo curl openssl git /usr/bin/time /usr/bin/docker-registry; do
  command -v "$t" >/dev/null || die "$t is missing: bash bench/setup.sh"
done

trap bench_cleanup EXIT
trap 'bench_cleanup; exit 130' INT
trap 'bench_cleanup; exit 143' TERM

# buildah's chroot isolation (the fastest it has) runs steps in the host's network namespace and
# refuses --network none; that only spares it the namespace mstage and BuildKit (--network=none)
# set up.
BUILDAH_BUD=(bud --layers --pull=false --tls-verify=false --isolation chroot -q)
DOCKER_BUILD=(build -q --network=none)

# ---- hello-go: noop, edit, cold-base-present, cold-pull --------------------------------------

# $W/hello: examples/hello-go as is (its debian() base made once in $STORE); $W/hello-docker: the
# equivalent Dockerfile. $W/pull and $W/pull-docker: the same two on toolchain-large from the
# registry (mstage's as image("$LARGE_REF")).
setup_hello() {
  ensure_base_docker
  ensure_base_buildah present
  [[ -n ${HELLO_READY:-} ]] && return
  rm -rf "$W/hello" "$W/hello-docker"
  mkdir -p "$W/hello" "$W/hello-docker"
  cp "$REPO"/examples/hello-go/{images.ts,images.lock,go.mod,main.go} "$W/hello/"
  cp "$REPO"/examples/hello-go/{go.mod,main.go} "$W/hello-docker/"
  cat >"$W/hello-docker/Dockerfile" <<DOCKERFILE
FROM $TOOLCHAIN_REF AS build
WORKDIR /src
COPY go.mod main.go /src/
ENV CGO_ENABLED=0 GOCACHE=/root/.cache/go-build GOFLAGS=-trimpath
RUN --mount=type=cache,target=/root/.cache/go-build go build -ldflags='-s -w -buildid=' -o /out/hello .

FROM scratch
COPY --from=build /out/hello /hello
CMD ["/hello"]
DOCKERFILE
  HELLO_READY=1
}

setup_pull() {
  setup_hello
  [[ -n ${PULL_READY:-} ]] && return
  rm -rf "$W/pull" "$W/pull-docker"
  mkdir -p "$W/pull" "$W/pull-docker"
  cp "$REPO"/examples/hello-go/{go.mod,main.go} "$W/pull/"
  rewrite "$REPO/examples/hello-go/images.ts" "$W/pull/images.ts" \
    "import { debian, " "import { image, " "from: $DEBIAN_GO" "from: image(\"$LARGE_REF\")"
  cp "$W/hello-docker"/{go.mod,main.go} "$W/pull-docker/"
  sed "s|^FROM $TOOLCHAIN_REF |FROM $LARGE_REF |" "$W/hello-docker/Dockerfile" >"$W/pull-docker/Dockerfile"
  # The pull project pins its base in images.lock on first use, as a user's would be.
  mstage up -f "$W/pull/images.ts" --store "$W/store-pull" -q >>"$W/setup.log" 2>&1 || die "mstage up of $W/pull failed (see $W/setup.log)"
  PULL_READY=1
}

mstage_hello() { mstage up -f "$W/hello/images.ts" --store "$STORE" -q "$@"; }
docker_hello() { docker "${DOCKER_BUILD[@]}" "$@" -t bench/hello "$W/hello-docker"; }
buildah_hello() { buildah_in present "${BUILDAH_BUD[@]}" "$@" -t localhost/bench/hello "$W/hello-docker"; }

# Each tool's first build is untimed, so the no-op and edit rounds start warm.
warm_hello() {
  { mstage_hello && { skipped buildkit || docker_hello; } && buildah_hello; } >>"$W/setup.log" 2>&1 || die "a warm-up build failed (see $W/setup.log)"
}

noop__mstage() { mstage_hello; }
noop__buildkit() { docker_hello; }
noop__buildah() { buildah_hello; }

# Each edit changes the greeting, so every tool rebuilds the build stage and the image.
edit_main() { sed -i "s/Hello from mstage![^\"]*/Hello from mstage! $EPOCHREALTIME/" "$1/main.go"; }
edit__mstage__prep() { edit_main "$W/hello"; }
edit__mstage() { mstage_hello; }
edit__buildkit__prep() { edit_main "$W/hello-docker"; }
edit__buildkit() { docker_hello; }
edit__buildah__prep() { edit_main "$W/hello-docker"; }
edit__buildah() { buildah_hello; }

# No stage cache and no Go build cache; the base stays (mstage's debian() result, the peers' image).
cold_base_present__mstage__prep() { rm -rf "$STORE/caches/go-build"; }
cold_base_present__mstage() { mstage_hello --no-cache; }
cold_base_present__buildkit__prep() { docker builder prune -af >/dev/null; }
cold_base_present__buildkit() { docker_hello --no-cache; }
cold_base_present__buildah__prep() { wipe_buildah_caches; }
cold_base_present__buildah() { buildah_hello --no-cache; }

# Nothing kept between runs: mstage's whole store and project state; docker's images and build
# cache; buildah's whole storage and its cache mounts.
# The stores go to the trash (bench/lib/common.sh), emptied by settle_disk before the next run: each
# prep used to delete 1–3 GB just before its timed run, with no wait. dockerd deletes its own images.
cold_pull__mstage__prep() { trash "$W/store-pull" "$W/pull/.mstage" "$W/pull/oci"; }
cold_pull__mstage() { mstage up -f "$W/pull/images.ts" --store "$W/store-pull" -q; }
cold_pull__buildkit__prep() {
  docker rmi -f bench/hello-pull "$LARGE_REF" >/dev/null 2>&1 || true
  docker builder prune -af >/dev/null
}
cold_pull__buildkit() { docker "${DOCKER_BUILD[@]}" -t bench/hello-pull "$W/pull-docker"; }
cold_pull__buildah__prep() { trash_buildah pull; wipe_buildah_caches; }
cold_pull__buildah() { buildah_in pull "${BUILDAH_BUD[@]}" -t localhost/bench/hello "$W/pull-docker"; }

run_hello_case() { # CASE ROUNDS
  setup_hello
  warm_hello
  case_header "$1" "$2"
  rounds "$1" "$2" mstage buildkit buildah
  medians "$1" mstage buildkit buildah
  compare "$1" mstage buildkit
  compare "$1" mstage buildah
  case_footer "$1"
}
case_noop() { run_hello_case noop "$ROUNDS"; }
case_edit() { run_hello_case edit "$ROUNDS"; }
case_cold_base_present() { local SETTLE=1; run_hello_case cold-base-present "$SLOW_ROUNDS"; }
case_cold_pull() {
  setup_pull
  case_header cold-pull "$SLOW_ROUNDS"
  local SETTLE=1
  rounds cold-pull "$SLOW_ROUNDS" mstage buildkit buildah
  medians cold-pull mstage buildkit buildah
  compare cold-pull mstage buildkit
  compare cold-pull mstage buildah
  case_footer cold-pull
  # The other hello cases expect the base in docker's image store again.
  ensure_base_docker
}

# ---- cold-pull-rootless: as mstage-test -----------------------------------------------------

ROOTLESS_USER=mstage-test
# TMPDIR of its own: buildah 1.28 keeps RUN --mount=type=cache under $TMPDIR/buildah-cache, which
# root's runs own in /var/tmp.
as_user() {
  runuser -u "$ROOTLESS_USER" -- env -u NODE_EXTRA_CA_CERTS HOME="$W/rootless/home" \
    XDG_RUNTIME_DIR="$W/rootless/run" TMPDIR="$W/rootless/tmp" "$@"
}
setup_rootless() {
  id "$ROOTLESS_USER" >/dev/null 2>&1 || die "no $ROOTLESS_USER user: run .ci/setup"
  setup_pull
  rm -rf "$W/rootless" && mkdir -p "$W/rootless/home" "$W/rootless/run" "$W/rootless/tmp"
  cp -r "$W/pull" "$W/rootless/pull"
  cp -r "$W/pull-docker" "$W/rootless/pull-docker"
  rm -rf "$W/rootless/pull/.mstage" "$W/rootless/pull/oci"
  chown -R "$ROOTLESS_USER:" "$W/rootless"
  chmod 700 "$W/rootless/run"
}
cold_pull_rootless__mstage__prep() { trash "$W/rootless/store" "$W/rootless/pull/.mstage" "$W/rootless/pull/oci"; }
cold_pull_rootless__mstage() { as_user node "$MSTAGE_BIN" up -f "$W/rootless/pull/images.ts" --store "$W/rootless/store" -q; }
cold_pull_rootless__buildah__prep() {
  as_user buildah --root "$W/rootless/buildah/root" --runroot "$W/rootless/buildah/run" rm --all >/dev/null 2>&1 || true
  trash "$W/rootless/buildah"
  as_user buildah unshare rm -rf "$W/rootless/tmp/buildah-cache"
}
cold_pull_rootless__buildah() {
  as_user buildah --root "$W/rootless/buildah/root" --runroot "$W/rootless/buildah/run" --storage-driver overlay \
    "${BUILDAH_BUD[@]}" -t localhost/bench/hello "$W/rootless/pull-docker"
}
case_cold_pull_rootless() {
  setup_rootless
  case_header cold-pull-rootless "$SLOW_ROUNDS"
  local SETTLE=1
  rounds cold-pull-rootless "$SLOW_ROUNDS" mstage buildah
  medians cold-pull-rootless mstage buildah
  compare cold-pull-rootless mstage buildah
  case_footer cold-pull-rootless
}

# ---- service: examples/service on a local tarball base --------------------------------------

has_zstd() { mstage up --help | grep -q -- '--compression'; }

setup_service() {
  ensure_base_tarball
  local layout
  layout=$(tarball_layout_link)
  rm -rf "$W/service" "$W/service-docker"
  mkdir -p "$W/service" "$W/service-docker"
  cp "$REPO"/examples/service/{go.mod,main.go} "$W/service/"
  ln "$W/tarball/base.tar" "$W/service/base.tar"
  rewrite "$REPO/examples/service/images.ts" "$W/service/images.ts" \
    "import { debian, local, stage }" "import { local, stage, tarball }" \
    "const base = $DEBIAN_GO;" 'const base = tarball(local("./base.tar"));'
  cp "$REPO"/examples/service/{go.mod,main.go} "$W/service-docker/"
  cat >"$W/service-docker/Dockerfile" <<DOCKERFILE
FROM oci:$layout:base AS server-build
WORKDIR /src
COPY go.mod main.go /src/
ENV CGO_ENABLED=0 GOCACHE=/root/.cache/go-build GOFLAGS=-trimpath
RUN --mount=type=cache,target=/root/.cache/go-build go build -ldflags='-s -w -buildid=' -o /out/server .

FROM oci:$layout:base
COPY --from=server-build /out/server /usr/local/bin/server
WORKDIR /var/lib/app
RUN useradd --system --uid 990 --user-group --home-dir /var/lib/app app && chown app:app /var/lib/app
USER app
ENV PORT=8080 GREETING="Hello from the service"
EXPOSE 8080/tcp
CMD ["/usr/local/bin/server"]
DOCKERFILE
}

service_wipe_mstage() { rm -rf "$W/store-service" "$W/service/.mstage" "$W/service/oci"; }
service__mstage__prep() { service_wipe_mstage; }
service__mstage() { mstage up -f "$W/service/images.ts" --store "$W/store-service" -q; }
service__mstage_zstd__prep() { service_wipe_mstage; }
service__mstage_zstd() { mstage up -f "$W/service/images.ts" --store "$W/store-service" -q --compression zstd; }
service__buildah__prep() { wipe_buildah service; wipe_buildah_caches; rm -rf "$W/service-oci"; }
service__buildah() {
  buildah_in service "${BUILDAH_BUD[@]}" -t localhost/bench/service "$W/service-docker" &&
    buildah_in service push -q --compression-format gzip localhost/bench/service "oci:$W/service-oci:service"
}
case_service() {
  setup_service
  local tools=(mstage buildah)
  has_zstd && tools=(mstage mstage-zstd buildah)
  case_header service "$SLOW_ROUNDS"
  local SETTLE=1
  has_zstd || echo "  (mstage up has no --compression here: the zstd row is left out)"
  rounds service "$SLOW_ROUNDS" "${tools[@]}"
  medians service "${tools[@]}"
  compare service mstage buildah
  has_zstd && compare service mstage-zstd buildah
  case_footer service
}

# ---- stages-2000: per-stage overhead ---------------------------------------------------------

# Chains of 10 stages on a busybox-static tarball, each running one shell command that writes one
# small file; one last stage copies each chain's file, so every stage is built and nothing else is
# exported. The project has no local files but the base. Per-stage overhead: the cold up of N
# stages minus the cold up of one chain of the same kind, over the stages in between.
STAGES=${STAGES:-2000}
gen_stages() { # DIR N
  local dir=$1 n=$2
  mkdir -p "$dir"
  ln -f "$W/stages/busybox.tar" "$dir/busybox.tar"
  node - "$dir/images.ts" "$n" <<'JS'
const [file, n] = [process.argv[2], Number(process.argv[3])];
const lines = [`import { local, scratch, stage, tarball, type Stage } from "mstage";`, `const s: Stage[] = [];`];
for (let i = 0; i < n; i++) {
  const from = i % 10 === 0 ? `tarball(local("./busybox.tar"))` : `s[${i - 1}]!`;
  lines.push(`s.push(stage("s${i}", { from: ${from}, run: "echo ${i} > /s${i}" }));`);
}
const tails = [];
for (let i = 0; i < n; i += 10) { const t = Math.min(i + 9, n - 1); tails.push(`"/c/${t}": s[${t}]!.path("/s${t}")`); }
lines.push(`export const all = stage("all", { from: scratch(), copy: { ${tails.join(", ")} } });`);
require("node:fs").writeFileSync(file, lines.join("\n") + "\n");
JS
}
setup_stages() {
  local root=$W/stages/busybox-root
  if [[ ! -f $W/stages/busybox.tar ]]; then
    [[ -x /bin/busybox ]] || die "/bin/busybox is missing: apt-get install busybox-static"
    rm -rf "$root" && mkdir -p "$root/bin"
    cp /bin/busybox "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$W/stages/busybox.tar" bin
  fi
  rm -rf "$W/stages/many" "$W/stages/one"
  gen_stages "$W/stages/many" "$STAGES"
  gen_stages "$W/stages/one" 10
}
stages_wipe() { rm -rf "$W/stages/store-$1" "$W/stages/$1/.mstage" "$W/stages/$1/oci"; }
stages_2000__mstage__prep() { stages_wipe many; }
stages_2000__mstage() { mstage up -f "$W/stages/many/images.ts" --store "$W/stages/store-many" -q; }
stages_2000__mstage_10__prep() { stages_wipe one; }
stages_2000__mstage_10() { mstage up -f "$W/stages/one/images.ts" --store "$W/stages/store-one" -q; }
case_stages_2000() {
  setup_stages
  case_header stages-2000 "$SLOW_ROUNDS"
  echo "  $STAGES stages (and a collector) vs 10 stages (and a collector), both cold"
  rounds stages-2000 "$SLOW_ROUNDS" mstage mstage-10
  medians stages-2000 mstage mstage-10
  local med lo hi line
  read -r med lo hi < <(paste "$RESULTS/stages-2000.mstage" "$RESULTS/stages-2000.mstage-10" |
    awk -v n="$STAGES" '{ printf "%.2f\n", ($1 - $2) * 1000 / (n - 10) }' | stats)
  line=$(printf '%-18s per-stage overhead %6.1f ms (%.1f–%.1f)  %s' stages-2000 "$med" "$lo" "$hi" "$(target_text "$med" 25 " ms")")
  echo "  $line"
  echo "$line" >>"$SUMMARY"
  case_footer stages-2000
}

# ---- files-200k: warm no-op plan vs git status -----------------------------------------------

FILES=${FILES:-200000}
setup_files() {
  local dir=$W/files
  if [[ ! -f $dir/.done-$FILES ]]; then
    say "generating $FILES files in $dir/tree and committing them to git (once)"
    rm -rf "$dir" && mkdir -p "$dir"
    node - "$dir/tree" "$FILES" <<'JS'
const { mkdirSync, writeFileSync } = require("node:fs");
const [dir, n] = [process.argv[2], Number(process.argv[3])];
for (let i = 0; i < n; i++) {
  const d = `${dir}/d${String(Math.floor(i / 1000)).padStart(3, "0")}`;
  if (i % 1000 === 0) mkdirSync(d, { recursive: true });
  writeFileSync(`${d}/f${String(i % 1000).padStart(3, "0")}.txt`, `file ${i}\n`);
}
JS
    cat >"$dir/images.ts" <<'TS'
import { local, scratch, stage } from "mstage";
export const data = stage("data", { from: scratch(), copy: { "/data": local("./tree") } });
TS
    printf '.mstage/\noci/\n.done-*\n' >"$dir/.gitignore"
    git -C "$dir" init -q
    git -C "$dir" add -A
    git -C "$dir" -c user.name=bench -c user.email=bench@localhost commit -q -m "the tree"
    touch "$dir/.done-$FILES"
  fi
  # The state a user has after building: a real up, then each tool once so the next runs are warm.
  mstage up -f "$dir/images.ts" --store "$W/store-files" -q >>"$W/setup.log" 2>&1 || die "mstage up of $dir failed (see $W/setup.log)"
  mstage plan -f "$dir/images.ts" --store "$W/store-files" -q >/dev/null
  git -C "$dir" status --porcelain >/dev/null
}
# Peak RSS of each run, next to its time.
rss_of() { # TOOL CMD…
  local tool=$1
  shift
  /usr/bin/time -f %M -o "$RESULTS/rss.last" "$@" && cat "$RESULTS/rss.last" >>"$RESULTS/files-200k.$tool.rss"
}
# --detailed-exitcode: exit 2 (a failed round) if the plan is not a no-op.
files_200k__mstage() { rss_of mstage env -u NODE_EXTRA_CA_CERTS node "$MSTAGE_BIN" plan -f "$W/files/images.ts" --store "$W/store-files" -q --detailed-exitcode; }
files_200k__git_status() { rss_of git-status git -C "$W/files" status --porcelain; }
case_files_200k() {
  setup_files
  [[ -z $(git -C "$W/files" status --porcelain) ]] || die "$W/files is not clean in git"
  case_header files-200k "$ROUNDS"
  rm -f "$RESULTS"/files-200k.*.rss
  rounds files-200k "$ROUNDS" mstage git-status
  medians files-200k mstage git-status
  compare files-200k mstage git-status
  local tool rss line
  for tool in mstage git-status; do
    rss=$(stats <"$RESULTS/files-200k.$tool.rss" | awk '{ printf "%.0f", $1 / 1024 }')
    line=$(printf '%-18s %-12s peak RSS %5d MB (median)' files-200k "$tool" "$rss")
    [[ $tool == mstage ]] && line+="  $(target_text "$rss" 150 " MB")"
    echo "  $line"
    echo "$line" >>"$SUMMARY"
  done
  case_footer files-200k
}

# ---- commit: a ~1 GiB tree as a layer --------------------------------------------------------

# The driver is bundled like the CLI, so no TypeScript loader is timed. The two XML libraries are
# CycloneDX's optional plug-ins, loaded only if installed (they are not).
setup_commit() {
  ensure_commit_tree
  "$REPO/node_modules/esbuild/bin/esbuild" "$REPO/bench/lib/commit.mts" --bundle --platform=node --format=esm \
    --log-level=warning --external:libxmljs2 --external:xmlbuilder2 --alias:@mstage/runtime="$REPO/packages/runtime/src/index.ts" \
    --alias:@mstage/core="$REPO/packages/core/src/index.ts" \
    --banner:js="import { createRequire as benchRequire } from 'node:module'; const require = benchRequire(import.meta.url);" \
    --outfile="$W/commit/commit.mjs"
  # The native lister the build made, beside the bundle where mstage's own dist/ has it.
  rm -f "$W"/commit/listdir.*.node
  cp "$REPO"/packages/cli/dist/listdir.*.node "$W/commit/" 2>/dev/null || say "no native lister in packages/cli/dist: the commit lists with Node's fs and getfattr"
  # Page cache warm for both, so neither pays for the first read.
  tar -C "$W/commit/tree" -cf - . | cat >/dev/null
}
# mstage: a stage's commit, which takes the upper dir as the layer (moved into the store), so each
# round commits a fresh copy of the tree, synced before the timing like every run. mstage-tar: the
# tar written into blobs/ and fsynced (debian() bases, squashes), from the tree itself.
# The last round's store and upper go to the trash, deleted before the next run on a disk at rest
# (SETTLE): an rm -rf in the prep left its discards running into mstage's timed syncfs.
commit__mstage__prep() { trash "$W/commit/store" "$W/commit/upper" && cp -a "$W/commit/tree" "$W/commit/upper"; }
commit__mstage() { env -u NODE_EXTRA_CA_CERTS node "$W/commit/commit.mjs" stage "$W/commit/upper" "$W/commit/store"; }
commit__mstage_tar__prep() { trash "$W/commit/store" "$W/commit/upper"; }
commit__mstage_tar() { env -u NODE_EXTRA_CA_CERTS node "$W/commit/commit.mjs" tar "$W/commit/tree" "$W/commit/store"; }
commit__tar_openssl() { tar -C "$W/commit/tree" -cf - . | openssl dgst -sha256 >/dev/null; }
case_commit() {
  local SETTLE=1
  setup_commit
  case_header commit "$ROUNDS"
  echo "  tree: $(du -sh --apparent-size "$W/commit/tree" | cut -f1), $(find "$W/commit/tree" -xdev | wc -l) entries"
  rounds commit "$ROUNDS" mstage tar-openssl mstage-tar
  medians commit mstage tar-openssl mstage-tar
  compare commit mstage tar-openssl
  compare commit mstage-tar tar-openssl
  case_footer commit
}

# ---- main ------------------------------------------------------------------------------------

for c in "${CASES[@]}"; do
  declare -F "case_${c//-/_}" >/dev/null || die "unknown case $c (cases: ${ALL_CASES[*]} cold-pull-rootless)"
done
# What -p runs per case: the set-up its case_* function starts with.
declare -A PREPARE=(
  [noop]="setup_hello warm_hello" [edit]="setup_hello warm_hello" [cold-base-present]="setup_hello warm_hello"
  [cold-pull]=setup_pull [cold-pull-rootless]=setup_rootless [service]=setup_service
  [stages-2000]=setup_stages [files-200k]=setup_files [commit]=setup_commit
)
if [[ -n $PREPARE_ONLY ]]; then
  for c in "${CASES[@]}"; do
    say "preparing $c"
    for f in ${PREPARE[$c]}; do "$f"; done
  done
  exit 0
fi
{
  echo "# mstage $(git -C "$REPO" rev-parse --short HEAD) on $(nproc) CPUs, $(date -u '+%F %H:%M UTC'), $ROUNDS rounds ($SLOW_ROUNDS for the slow cases)"
} >"$SUMMARY"
for c in "${CASES[@]}"; do
  CASE_T0=$EPOCHREALTIME
  "case_${c//-/_}"
done
say "summary (also in $SUMMARY)"
cat "$SUMMARY"
