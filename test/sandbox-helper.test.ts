// The helper a step's setup runs before it drops capabilities (setpriv, its loader and libraries
// in /dev/.mstage) is shared by the steps of one rootfs: a step must not be able to change it, or
// the next step's setup would run the step's own code with every capability of the namespace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { expectOk, projectWith, testUsers } from "./up-harness.ts";

const IMAGES = `import { local, scratch, stage } from "mstage";
export const probe = stage("probe", {
  from: scratch(),
  copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) },
  shell: ["/bin/busybox", "sh", "-c"],
  run: [
    "/bin/busybox --install -s /bin",
    'for f in /dev/.mstage/*; do [ -f "$f" ] || continue; if (echo x >> "$f") 2>/dev/null; then echo "$f writable"; fi; rm -f "$f" 2>/dev/null; mv "$f" "$f.x" 2>/dev/null; done; touch /dev/.mstage/new 2>/dev/null && echo "new file made"; ls /dev/.mstage | wc -l | sed "s/^/helper files: /"',
    "echo second step ran",
  ],
});
`;

for (const user of testUsers()) {
  test(`a step cannot write, remove or add to the setup helper in /dev/.mstage, and the next step still starts (${user.name})`, { timeout: 5 * 60_000 }, async (t) => {
    if (user.skip) return t.skip(user.skip);
    if (!existsSync("/bin/busybox")) return t.skip("busybox-static is not installed (/bin/busybox): run .ci/setup");
    const { mstage } = projectWith(t, user.name, "helper", IMAGES);
    const r = expectOk(await mstage(["up", "--progress", "plain", "--sbom=false"]), "up");
    assert.doesNotMatch(r.stderr, /writable|new file made/);
    const count = /helper files: (\d+)/.exec(r.stderr);
    assert.ok(count && Number(count[1]) >= 3, `the helper's files are all still there: ${count?.[0]}`);
    assert.match(r.stderr, /second step ran/);
  });
}
