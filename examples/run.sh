#!/usr/bin/env bash
# Builds one example with mstage and runs the image it wrote, the way a user would try it:
#   bash examples/run.sh hello-go [ref]      (after `pnpm build`)
# The image is unpacked with umoci and run with runc; without them, mstage's own sandbox runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: examples/run.sh <example> [ref]}
dir=examples/$name
[ -f "$dir/images.ts" ] || { echo "no example named $name (see examples/)" >&2; exit 1; }
mstage=(node "$PWD/packages/cli/bin/mstage.mjs" -f "$dir/images.ts")

"${mstage[@]}" up
ref=${2:-$(node -e 'const i = require(process.argv[1]); console.log(i.manifests[0].annotations["org.opencontainers.image.ref.name"])' "$PWD/$dir/oci/index.json")}
echo "== running $ref"

if command -v umoci >/dev/null && command -v runc >/dev/null && [ "$(id -u)" = 0 ]; then
  bundle=$(mktemp -d)
  trap 'rm -rf "$bundle"' EXIT
  umoci unpack --image "$dir/oci:$ref" "$bundle/b" >/dev/null
  # Not attached to a terminal: runc must not ask for one.
  node -e 'const f = process.argv[1], fs = require("fs"); const c = JSON.parse(fs.readFileSync(f)); c.process.terminal = false; fs.writeFileSync(f, JSON.stringify(c))' "$bundle/b/config.json"
  runc run -b "$bundle/b" "mstage-example-$$"
else
  # Rootless: run the image's command in mstage's own throw-away sandbox.
  cmd=$(node -e 'const c = JSON.parse(require("child_process").execFileSync("skopeo", ["inspect", "--config", process.argv[1]], {encoding: "utf8"})).config; console.log([...(c.Entrypoint || []), ...(c.Cmd || [])].join("\n"))' "oci:$dir/oci:$ref")
  mapfile -t argv <<<"$cmd"
  "${mstage[@]}" shell -q "$ref" -- "${argv[@]}"
fi
