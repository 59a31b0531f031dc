// A Docker user's .dockerignore applies to local() sources when there is no .mstageignore (issue
// 10, item 12), with Docker's pattern syntax, and plan says so; a .mstageignore takes precedence.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { imageEntries } from "./helpers/image-entries.ts";
import { expectOk, projectWith, testUsers, writeAs } from "./up-harness.ts";

test(".dockerignore applies to local() when there is no .mstageignore, and plan names it", { timeout: 2 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const { project, mstage } = projectWith(t, user, "dockerignore", `import { local, scratch, stage } from "mstage";
export const app = stage("app", { from: scratch(), copy: { "/app/": local("./app") } });
`);
  mkdirSync(join(project, "app/sub"), { recursive: true });
  for (const f of ["app/main.js", "app/debug.log", "app/sub/deep.log", "app/sub/x.tmp", "app/keep.log"]) writeFileSync(join(project, f), f);
  // Docker's syntax: paths from the context (the project dir), so app/*.log is top-level logs of app/ only.
  writeAs(user, join(project, ".dockerignore"), "app/*.log\n**/*.tmp\n!app/keep.log\n");

  const plan = expectOk(await mstage(["plan"]), "plan");
  assert.match(plan.stdout, /local\(\) sources leave out what \.dockerignore lists/);
  const json = JSON.parse(expectOk(await mstage(["plan", "--json"]), "plan --json").stdout);
  assert.equal(json.ignoreFile, ".dockerignore");
  expectOk(await mstage(["up", "-q"]), "up");
  const files = [...imageEntries(join(project, "oci"), "app").keys()].filter((p) => p.startsWith("app/") && !p.endsWith("sub"));
  assert.deepEqual(files.sort(), ["app/keep.log", "app/main.js", "app/sub/deep.log"]);

  await t.test("a .mstageignore wins over the .dockerignore", async () => {
    writeAs(user, join(project, ".mstageignore"), "*.js\n");
    const again = expectOk(await mstage(["plan", "--json"]), "plan --json");
    assert.equal(JSON.parse(again.stdout).ignoreFile, ".mstageignore");
    expectOk(await mstage(["up", "-q"]), "up");
    const now = [...imageEntries(join(project, "oci"), "app").keys()].filter((p) => p.startsWith("app/") && !p.endsWith("sub"));
    assert.deepEqual(now.sort(), ["app/debug.log", "app/keep.log", "app/sub/deep.log", "app/sub/x.tmp"]);
  });
});
