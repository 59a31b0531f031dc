// Command-line mistakes are the user's, said in one line that names the flag, with exit 1; -v is
// --verbose and nothing else; help shows no "(default: true)" on --no-… flags; watch takes every
// option up takes; `up --json` is the event stream that `watch --json` prints.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mstage } from "./helpers/mstage-cli.ts";
import { mstageAs, testUsers, userDir } from "./up-harness.ts";

const dir = mkdtempSync(join(tmpdir(), "mstage-cli-options-"));
writeFileSync(
  join(dir, "images.ts"),
  `import { local, scratch, stage } from "mstage";
const base = stage("base", { from: scratch(), copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) }, shell: ["/bin/busybox", "sh", "-c"], run: "/bin/busybox --install -s /bin" });
export const app = stage("app", { from: base, run: "echo hi > /hi", cmd: ["/bin/sh"] });
`,
);
const env = { MSTAGE_STORE: mkdtempSync(join(tmpdir(), "mstage-cli-options-store-")) };

for (const [args, message] of [
  [["up", "--pussh"], /^error: unknown option --pussh for mstage up \(did you mean "--push"\?\); see `mstage up --help`\n$/],
  [["plan", "--jsn"], /^error: unknown option --jsn for mstage plan \(did you mean "--json"\?\)/],
  [["watch", "--bogus"], /^error: unknown option --bogus for mstage watch; see `mstage watch --help`\n$/],
  [["shell"], /^error: mstage shell needs more arguments: mstage shell <stage> \[\.\.\.cmd\]\n$/],
  [["graph", "--format"], /^error: --format needs a value: mstage graph --format <format>\n$/],
  [["up", "--progress", "fancy"], /^error: --progress must be auto, tty or plain, got "fancy"\n$/],
  [["watch", "--jobs", "0"], /^error: --jobs must be a whole number ≥ 1, got 0\n$/],
] as const) {
  test(`mstage ${args.join(" ")} is a user error naming the flag, exit 1`, () => {
    const r = mstage(dir, [...args], env);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /internal error|CACError|    at /);
  });
}

test("-v is --verbose, -V the version; help marks no --no-… flag as on by default; watch lists up's options", () => {
  const version = mstage(dir, ["-V"], env);
  assert.match(version.stdout, /^mstage\/\d+\.\d+\.\d+ /);
  const verbose = mstage(dir, ["-v", "plan", "--offline"], env);
  assert.equal(verbose.code, 0, verbose.stderr);
  assert.match(verbose.stdout, /^\+ base +new/m, "-v runs the command instead of printing the version");
  const help = mstage(dir, ["up", "--help"], env).stdout;
  assert.match(help, /--no-cache \[stage\]/);
  assert.doesNotMatch(help, /--no-.*\(default: true\)/);
  const watchHelp = mstage(dir, ["watch", "--help"], env).stdout;
  for (const flag of ["--push", "--offline", "--no-cache", "--refresh", "--cache-from", "--sbom", "--json"]) assert.ok(watchHelp.includes(flag), `watch takes ${flag}`);
});

test("up --json prints one event a line: the plan, each stage, the outputs and the result", { timeout: 120_000 }, async (t) => {
  if (!existsSync("/bin/busybox")) return t.skip("busybox-static is not installed (/bin/busybox): run .ci/setup");
  const user = testUsers()[0]!.name;
  const store = userDir(user, "store");
  t.after(() => rmSync(store, { recursive: true, force: true }));
  const r = await mstageAs(user, dir, store)(["up", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const events = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as { type: string; time: string; [k: string]: unknown });
  assert.equal(events[0]!.type, "plan");
  assert.deepEqual((events[0]!.stages as { name: string }[]).map((s) => s.name), ["base", "app"]);
  assert.ok(events.every((e) => typeof e.time === "string"));
  const done = events.filter((e) => e.type === "stage-done").map((e) => e.stage);
  assert.deepEqual(done, ["base", "app"]);
  assert.ok(events.some((e) => e.type === "output" && e.ref === "app" && String(e.digest).startsWith("sha256:")));
  const result = events.at(-1)!;
  assert.equal(result.type, "result");
  assert.equal(result.built, 2);
  assert.equal(result.cached, 0);
});
