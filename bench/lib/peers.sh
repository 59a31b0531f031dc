# The peers mstage is compared with, each with its own state under the bench dir: a loopback
# docker-registry (Debian's), dockerd from Debian's docker.io (BuildKit), and buildah. Started on
# first use, stopped by bench_cleanup (compare.sh traps EXIT, INT and TERM). Sourced, never run.
# shellcheck shell=bash

# A fixed port, so image references (in Dockerfiles, images.ts and images.lock) stay the same from
# one bench run to the next and the registry's storage can be kept.
REGISTRY_PORT=${MSTAGE_BENCH_REGISTRY_PORT:-5391}
REGISTRY=127.0.0.1:$REGISTRY_PORT
REGISTRY_PID=

DOCKER_DIR=$W/docker
# /usr/local/bin/docker on this machine is an unrelated client: always Debian's.
DOCKER_CLI=/usr/bin/docker
DOCKERD_PID=

BUILDAH_STATE=$W/buildah

port_answers() { curl -s -o /dev/null --max-time 1 "http://$REGISTRY/v2/"; }

start_registry() {
  [[ -n $REGISTRY_PID ]] && return
  port_answers && die "something already answers on $REGISTRY (set MSTAGE_BENCH_REGISTRY_PORT)"
  mkdir -p "$W/registry"
  cat >"$W/registry/config.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $W/registry/data }, delete: { enabled: true } }
http: { addr: $REGISTRY, secret: mstage-bench }
YAML
  /usr/bin/docker-registry serve "$W/registry/config.yml" >>"$W/registry/log" 2>&1 &
  REGISTRY_PID=$!
  local i
  for ((i = 0; i < 200; i++)); do
    port_answers && return
    kill -0 "$REGISTRY_PID" 2>/dev/null || die "docker-registry exited (see $W/registry/log)"
    sleep 0.05
  done
  die "docker-registry did not answer on $REGISTRY within 10 s"
}

# ---- BuildKit (dockerd) ----

docker() { DOCKER_BUILDKIT=1 "$DOCKER_CLI" -H "unix://$DOCKER_DIR/docker.sock" "$@"; }

start_dockerd() {
  [[ -n $DOCKERD_PID ]] && return
  [[ -x /usr/sbin/dockerd && -x $DOCKER_CLI ]] || die "dockerd is missing: bash bench/setup.sh"
  mkdir -p "$DOCKER_DIR"
  # Its own data root, exec root and socket: nothing of a system dockerd is used or touched. No
  # bridge: builds run with --network=none, like mstage's steps.
  /usr/sbin/dockerd --data-root "$DOCKER_DIR/root" --exec-root "$DOCKER_DIR/exec" \
    --pidfile "$DOCKER_DIR/dockerd.pid" -H "unix://$DOCKER_DIR/docker.sock" \
    --bridge=none --iptables=false --ip-masq=false >>"$DOCKER_DIR/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    docker version >/dev/null 2>&1 && return
    kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited (see $DOCKER_DIR/dockerd.log)"
    sleep 0.1
  done
  die "dockerd did not answer within 30 s (see $DOCKER_DIR/dockerd.log)"
}

# ---- buildah ----

# buildah_in NAME ARGS…: buildah with the storage NAME under the bench dir (cases that wipe their
# storage between runs use their own).
buildah_in() {
  local name=$1
  shift
  buildah --root "$BUILDAH_STATE/$name/root" --runroot "$BUILDAH_STATE/$name/run" --storage-driver overlay "$@"
}

# wipe_buildah NAME: removes every image and container of that storage, then the storage itself.
wipe_buildah() {
  buildah_in "$1" rm --all >/dev/null 2>&1 || true
  buildah_in "$1" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "${BUILDAH_STATE:?}/$1"
}

# trash_buildah NAME: the same, but its storage is moved into the trash (see trash) rather than
# deleted, so the next timed run does not follow gigabytes of deletes; no container is left (bud
# removes its own), so the storage holds no mount.
trash_buildah() {
  buildah_in "$1" rm --all >/dev/null 2>&1 || true
  trash "${BUILDAH_STATE:?}/$1"
}

# buildah's RUN --mount=type=cache directories (1.28 keeps them under /var/tmp).
wipe_buildah_caches() { rm -rf /var/tmp/buildah-cache /var/tmp/buildah-cache-"$(id -u)"; }

# ---- cleanup ----

stop_pid() { # PID: TERM, then KILL after 10 s
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

bench_cleanup() {
  [[ -n $DOCKERD_PID ]] && { stop_pid "$DOCKERD_PID"; wait "$DOCKERD_PID" 2>/dev/null || true; DOCKERD_PID=; }
  [[ -n $REGISTRY_PID ]] && { stop_pid "$REGISTRY_PID"; wait "$REGISTRY_PID" 2>/dev/null || true; REGISTRY_PID=; }
  return 0
}
