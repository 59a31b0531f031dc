#!/usr/bin/env bash
# What bench/compare.sh needs beyond .ci/setup: Debian's docker.io (dockerd with BuildKit; the tests
# never need it, so it is not in .ci/setup), plus the tools the cases call. Idempotent; as root.
set -euo pipefail
[[ $(id -u) == 0 ]] || { echo "bench/setup.sh: run as root" >&2; exit 1; }
want=()
[[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] || want+=(docker.io)
for pair in buildah:buildah skopeo:skopeo docker-registry:docker-registry openssl:openssl git:git \
  time:/usr/bin/time curl:curl busybox-static:/bin/busybox; do
  command -v "${pair#*:}" >/dev/null || want+=("${pair%%:*}")
done
if ((${#want[@]})); then
  echo "installing ${want[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${want[@]}"
fi
# compare.sh never talks to a system dockerd (docker.io starts one where systemd runs): it starts
# its own, with its own data root and socket.
echo "bench/setup.sh: ready ($(/usr/bin/docker --version))"
