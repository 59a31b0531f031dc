#!/usr/bin/env bash
# Per-step sandbox overhead: the wall time of runStep for a no-op step (`true` on busybox, and with
# network "none"), measured through the sandbox test harness in one mounted rootfs, as root and as
# mstage-test when it exists. Prints the median and the mean over the runs, and the load.
# Target (issue 9): the hardening costs at most 10 ms per step.
#   bash bench/step.sh [STEPS]      (default 40 steps per network mode)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-40}
users=("$(id -un)")
if [ "$(id -u)" = 0 ] && id mstage-test >/dev/null 2>&1; then users+=(mstage-test); fi
echo "load: $(uptime | sed 's/.*load average: //')"
for user in "${users[@]}"; do
  node --import tsx -e '
const [user, n] = [process.argv[1], Number(process.argv[2])];
const { runHarness } = await import("./test/helpers/sandbox-harness.ts");
const step = (network) => ({ argv: ["/bin/sh", "-c", "true"], network });
const steps = [step("host"), ...Array.from({ length: n }, () => step("host")), ...Array.from({ length: n }, () => step("none"))];
const r = await runHarness(user, { base: "busybox", steps });
if (r.steps.some((s) => s.exitCode !== 0)) throw new Error("a step failed:\n" + r.stderrLog);
// The first step also builds the rootfs'"'"' /dev template: left out.
const report = (what, ms) => {
  const s = [...ms].sort((a, b) => a - b);
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  console.log(`${user.padEnd(12)} ${what.padEnd(15)} median ${s[s.length >> 1].toFixed(1)} ms   mean ${mean.toFixed(1)} ms   (${ms.length} steps)`);
};
report("network host", r.steps.slice(1, n + 1).map((s) => s.ms));
report("network none", r.steps.slice(n + 1).map((s) => s.ms));
' "$user" "$n"
done
echo "load: $(uptime | sed 's/.*load average: //')"
