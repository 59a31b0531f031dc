# The bases every tool builds on, made offline and once per bench dir by mstage's own debian():
#   toolchain        hello-go's base (bookworm + golang-go, ~640 MB), what its debian() makes;
#   toolchain-large  the same with build-essential and git (~970 MB, the size issue 16 measured
#                    with), for the pull, the tarball base and the commit tree.
# Both are written as OCI images by a real `mstage up` and pushed to the loopback registry for
# BuildKit and buildah. Each ensure_* is idempotent and untimed. Sourced, never run.
# shellcheck shell=bash

STORE=$W/store # mstage's store for the cases whose base is present
TOOLCHAIN_REF=$REGISTRY/bench/toolchain:latest
LARGE_REF=$REGISTRY/bench/toolchain-large:latest
DEBIAN_GO='debian({ suite: "bookworm", packages: ["golang-go"] })'
DEBIAN_LARGE='debian({ suite: "bookworm", packages: ["golang-go", "build-essential", "git"] })'

# images.lock starts as the hello-go example's, so the hello project's debian() base is this one.
ensure_toolchain() {
  [[ -n ${TOOLCHAIN_READY:-} ]] && return
  start_registry
  mkdir -p "$W/base"
  cat >"$W/base/images.ts" <<TS
import { debian, stage } from "mstage";
export const toolchain = stage("toolchain", { from: $DEBIAN_GO });
export const large = stage("toolchain-large", { from: $DEBIAN_LARGE });
TS
  [[ -f $W/base/images.lock ]] || cp "$REPO/examples/hello-go/images.lock" "$W/base/images.lock"
  if ! grep -q toolchain-large "$W/base/oci/index.json" 2>/dev/null; then
    say "making the Debian+golang bases once (mmdebstrap, then a gzip export)"
  fi
  mstage -f "$W/base/images.ts" --store "$STORE" up -q >>"$W/base/up.log" 2>&1 ||
    die "mstage up of the base failed (see $W/base/up.log)"
  skopeo copy -q --dest-tls-verify=false "oci:$W/base/oci:toolchain" "docker://$TOOLCHAIN_REF" &&
    skopeo copy -q --dest-tls-verify=false "oci:$W/base/oci:toolchain-large" "docker://$LARGE_REF" ||
    die "pushing the bases to $REGISTRY failed"
  TOOLCHAIN_READY=1
}

ensure_base_docker() {
  ensure_toolchain
  skipped buildkit && return
  start_dockerd
  docker image inspect "$TOOLCHAIN_REF" >/dev/null 2>&1 || docker pull -q "$TOOLCHAIN_REF" >/dev/null
}

ensure_base_buildah() { # STORAGE
  ensure_toolchain
  buildah_in "$1" inspect --type image "$TOOLCHAIN_REF" >/dev/null 2>&1 ||
    buildah_in "$1" pull -q --tls-verify=false "$TOOLCHAIN_REF" >/dev/null
}

# $W/tarball/base.tar: toolchain-large's one layer, uncompressed (the ~968 MB "local tarball base"),
# and $W/tarball/layout: the same tar as an OCI image with an uncompressed layer, for buildah's FROM.
ensure_base_tarball() {
  local t=$W/tarball
  [[ -f $t/.done ]] && return
  ensure_toolchain
  rm -rf "$t" && mkdir -p "$t/layout/blobs/sha256"
  local manifest layer
  manifest=$(node -e '
    const fs = require("fs"), dir = process.argv[1];
    const idx = JSON.parse(fs.readFileSync(dir + "/index.json", "utf8"));
    const blob = (d) => fs.readFileSync(dir + "/blobs/sha256/" + d.slice(7), "utf8");
    const m = JSON.parse(blob(idx.manifests.find((x) => x.annotations?.["org.opencontainers.image.ref.name"] === "toolchain-large").digest));
    if (m.layers.length !== 1) throw new Error("toolchain-large has " + m.layers.length + " layers, want 1");
    console.log(m.layers[0].digest.slice(7));' "$W/base/oci")
  layer=$W/base/oci/blobs/sha256/$manifest
  gzip -dc "$layer" >"$t/base.tar"
  local diff size
  diff=$(openssl dgst -sha256 -r "$t/base.tar" | cut -d' ' -f1)
  size=$(stat -c %s "$t/base.tar")
  ln "$t/base.tar" "$t/layout/blobs/sha256/$diff"
  write_blob() { # JSON → prints "digest size"
    local d
    d=$(printf '%s' "$1" | openssl dgst -sha256 -r | cut -d' ' -f1)
    printf '%s' "$1" >"$t/layout/blobs/sha256/$d"
    echo "$d ${#1}"
  }
  local config cfg manifest_json man
  config='{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:'$diff'"]},"history":[{"created_by":"mstage bench: toolchain-large as one tar"}]}'
  read -r -a cfg < <(write_blob "$config")
  manifest_json='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'${cfg[0]}'","size":'${cfg[1]}'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'$diff'","size":'$size'}]}'
  read -r -a man < <(write_blob "$manifest_json")
  echo '{"imageLayoutVersion":"1.0.0"}' >"$t/layout/oci-layout"
  echo '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'${man[0]}'","size":'${man[1]}',"annotations":{"org.opencontainers.image.ref.name":"base"}}]}' >"$t/layout/index.json"
  touch "$t/.done"
}

# buildah names an oci: base after its path, and a path component starting with a dot (.bench) is
# no valid name: FROM reaches the layout through a link whose path has none.
tarball_layout_link() {
  local link
  link=/var/tmp/mstage-bench-$(printf '%s' "$W" | openssl dgst -sha256 -r | cut -c1-12)
  ln -sfn "$W/tarball/layout" "$link"
  echo "$link"
}

# $W/commit/tree: toolchain-large's files unpacked (~1 GiB), the commit case's tree.
ensure_commit_tree() {
  [[ -f $W/commit/.done ]] && return
  ensure_base_tarball
  rm -rf "$W/commit" && mkdir -p "$W/commit/tree"
  tar -xf "$W/tarball/base.tar" -C "$W/commit/tree" --numeric-owner
  touch "$W/commit/.done"
}
