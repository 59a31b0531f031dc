// A debian() base that mmdebstrap cannot make: the error leads with mmdebstrap's own cause, also
// under -q (where no output of the run was shown), and none of its chroot-setup noise. The "custom"
// variant installs only the listed packages, so apt's resolution fails right after one `apt-get
// update` against the mirror; with minbase it fails the same way after the essential set (~90 s).
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { mstageAs, testUsers, tool, userDir, writeAs } from "./up-harness.ts";

const root = testUsers()[0]!;

function whyNot(): string | undefined {
  if (!tool("mmdebstrap")) return "missing mmdebstrap: run .ci/setup";
  if (process.getuid?.() !== 0) return "bootstraps debian() as root in mstage's namespace; run as root";
  return undefined;
}

test("a debian() base with a misspelled package fails with mmdebstrap's cause, also with -q", { skip: whyNot(), timeout: 5 * 60_000 }, async (t) => {
  const project = userDir(root.name, "debian-errors");
  const store = userDir(root.name, "debian-errors-store");
  t.after(() => {
    for (const d of [project, store]) rmSync(d, { recursive: true, force: true });
  });
  writeAs(
    root.name,
    join(project, "images.ts"),
    `import { debian, stage } from "mstage";
export const app = stage("app", { from: debian({ suite: "bookworm", variant: "custom", packages: ["nodejss"] }), cmd: ["node"] });
`,
  );
  const r = await mstageAs(root.name, project, store)(["up", "-q"]);
  assert.equal(r.code, 1, r.stderr);
  const first = r.stderr.trim().split("\n")[0] ?? "";
  assert.match(first, /debian bookworm: Unable to locate package nodejss/, `the first line names the cause:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /internal error/);
  assert.doesNotMatch(r.stderr, /^mount: .*permission denied|dmesg\(1\)/m, "no chroot-setup noise");
});
