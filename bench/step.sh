#!/usr/bin/env bash
# Per-step sandbox overhead: no-op steps (`true` on busybox) run through the sandbox test harness in
# one mounted rootfs, as root and as mstage-test when it exists, with network "host" and "none".
# Two figures per row: the median wall time of runStep, and the mean CPU time of the processes it
# ran (user+sys, counted in 10 ms ticks, so only a mean over many steps means anything), which a
# loaded machine disturbs far less than wall time. The first step also builds the rootfs' /dev and
# is left out.
# Target (issue 9): the hardening costs at most 10 ms per step.
#   bash bench/step.sh [STEPS]      (default 40 per row)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-40}
users=("$(id -un)")
if [ "$(id -u)" = 0 ] && id mstage-test >/dev/null 2>&1; then users+=(mstage-test); fi
echo "load before: $(uptime | sed 's/.*load average: //')"
for user in "${users[@]}"; do
  node --import tsx -e '
const [user, n] = [process.argv[1], Number(process.argv[2])];
const { runHarness } = await import("./test/helpers/sandbox-harness.ts");
for (const network of ["host", "none"]) {
  const steps = Array.from({ length: n + 1 }, () => ({ argv: ["/bin/sh", "-c", "true"], network }));
  const r = await runHarness(user, { base: "busybox", steps });
  if (r.steps.some((s) => s.exitCode !== 0)) throw new Error("a step failed:\n" + r.stderrLog);
  const timed = r.steps.slice(1);
  const wall = timed.map((s) => s.ms).sort((a, b) => a - b)[timed.length >> 1];
  const cpu = timed.reduce((a, s) => a + s.cpuMs, 0) / timed.length;
  console.log(`${user.padEnd(12)} network ${network.padEnd(5)} wall median ${wall.toFixed(1).padStart(5)} ms   cpu mean ${cpu.toFixed(1).padStart(5)} ms per step   (${timed.length} steps)`);
}
' "$user" "$n"
done
echo "load after: $(uptime | sed 's/.*load average: //')"
