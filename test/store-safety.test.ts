// What `mstage gc` must leave alone, and what `plan` must not claim: a shell session's layers while
// it runs, the blobs a cached stage on an oci() base needs for `up --offline`, and a result whose
// layers are gone is "not in store" to plan as it is to up. Runs as the invoking user and mstage-test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { registryUnavailable, startRegistry } from "./helpers/registry.ts";
import { asUser } from "./helpers/users.ts";
import { MSTAGE_BIN, expectOk, layoutRefs, mstageAs, projectFrom, testUsers, tool, treeFingerprint, userDir, userDirsFor, writeAs, type Mstage } from "./up-harness.ts";

const busybox = existsSync("/bin/busybox") ? undefined : "busybox-static is not installed (/bin/busybox): run .ci/setup";
const missing = ["skopeo", "umoci", "runc"].filter((t) => !tool(t));


/** A project of one stage `name` on `from` (an expression of the `base` function) that reads the base's /hello.txt. */
function readerOf(name: string, base: string, from: string): string {
  return `import { ${base}, stage } from "mstage";
export const ${name} = stage("${name}", {
  from: ${from},
  run: "cat /hello.txt > /seen.txt",
  cmd: ["cat", "/seen.txt"],
});
`;
}

/**
 * Builds stage `name` of the project at `dir`, runs `between` (a gc, say), removes its oci/, and
 * checks that `up --offline` then builds nothing and writes the same digest.
 */
async function sameOfflineAfter(mstage: Mstage, dir: string, name: string, between: () => Promise<void>): Promise<void> {
  expectOk(await mstage(["up", "-q"]), `up of ${name}`);
  const built = layoutRefs(join(dir, "oci"))[name];
  assert.ok(built);
  await between();
  rmSync(join(dir, "oci"), { recursive: true, force: true });
  const again = expectOk(await mstage(["up", "--offline", "--progress", "plain"]), `up --offline of ${name}`);
  assert.match(again.stdout, /0 built, 1 cached/);
  assert.equal(layoutRefs(join(dir, "oci"))[name], built);
}

for (const user of testUsers()) {
  test(`gc and plan respect what the store's users need (${user.name})`, { timeout: 5 * 60_000 }, async (t) => {
    const why = user.skip ?? busybox ?? (missing.length ? `missing ${missing.join(", ")}: run .ci/setup` : undefined);
    if (why) return t.skip(why);
    const { project: first, store, mstage } = projectFrom(t, user.name, "store-safety");
    const [second] = userDirsFor(t, user.name, "safety-b") as [string];
    expectOk(await mstage(["up", "-q"]), "first up");

    await t.test("a gc started while a shell session runs fails as busy and removes none of its layers", async () => {
      const c = asUser(user.name, [process.execPath, MSTAGE_BIN, "shell", "app", "-q", "--", "sh", "-c", "echo ready; read line; cat /hello.txt"], { MSTAGE_STORE: store, NO_COLOR: "1" });
      const child = spawn(c.cmd, c.args, { cwd: first, env: c.env, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      const closed = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`the shell session never started:\n${stderr}`)), 120_000);
          child.stdout.setEncoding("utf8").on("data", (d: string) => {
            stdout += d;
            if (stdout.includes("ready")) {
              clearTimeout(timer);
              resolve();
            }
          });
          child.once("close", () => reject(new Error(`the shell ended early:\n${stdout}\n${stderr}`)));
        });
        // Taken now: the session has extracted the layers it mounts.
        const layersBefore = treeFingerprint(join(store, "layers"));
        // --max-size 0 would drop every result and so every layer, the session's lower dirs too.
        const gc = await mstage(["gc", "--max-size", "0"]);
        assert.notEqual(gc.code, 0, `gc ran during the session:\n${gc.stdout}`);
        assert.match(gc.stderr, /the store is busy/);
        assert.deepEqual(treeFingerprint(join(store, "layers")), layersBefore);
        child.stdin.end("go\n");
        assert.equal(await closed, 0, stderr);
        assert.match(stdout, /^hello$/m, "the session still reads its layers after the gc attempt");
      } finally {
        child.kill("SIGKILL");
      }
      // Once the session is over the store is free again.
      expectOk(await mstage(["gc", "--dry-run"]), "gc after the session");
    });

    await t.test("after gc, up --offline of a cached stage on an oci() base gives the same digest", async () => {
      writeAs(user.name, join(second, "images.ts"), readerOf("layered", "oci", `oci(${JSON.stringify(join(first, "oci"))}, "app")`));
      const other = mstageAs(user.name, second, store);
      await sameOfflineAfter(other, second, "layered", async () => void expectOk(await other(["gc"]), "gc"));
    });

    await t.test("plan says a result whose layer is gone is not in store", async () => {
      const plan = expectOk(await mstage(["plan"]), "plan before");
      assert.match(plan.stdout, /= app/);
      const result = readdirSync(join(store, "results"))
        .map((f) => JSON.parse(readFileSync(join(store, "results", f), "utf8")) as { stage?: string; layers: { diffId: string }[]; project?: string })
        .find((r) => r.stage === "app" && r.project === first);
      assert.ok(result, "app's result is in the store");
      const hex = result.layers.at(-1)!.diffId.slice("sha256:".length);
      // Every form of app's own layer: extracted, its tar, its gzip.
      const gz = join(store, "gzip", hex);
      if (existsSync(gz)) rmSync(join(store, "blobs/sha256", readFileSync(gz, "utf8").split(" ")[0]!.slice("sha256:".length)), { force: true });
      rmSync(join(store, "blobs/sha256", hex), { force: true });
      // The layer holds only /hello.txt, owned by the invoking user (root inside the namespace).
      rmSync(join(store, "layers", hex), { recursive: true, force: true });
      const after = expectOk(await mstage(["plan"]), "plan after");
      assert.match(after.stdout, /^~ app +rebuild: not in store$/m);
    });

    await t.test("after gc dropped a pulled base's record, up --offline of a cached stage on it needs no registry and gives the same digest", async (tt) => {
      const noRegistry = registryUnavailable();
      if (noRegistry) return tt.skip(noRegistry);
      const registry = await startRegistry();
      const third = userDir(user.name, "safety-c");
      // A store of its own: the base's manifest and config come from the registry, not the first build.
      const pullStore = userDir(user.name, "safety-store3");
      tt.after(async () => {
        await registry.stop();
        for (const d of [third, pullStore]) rmSync(d, { recursive: true, force: true });
      });
      const ref = `${registry.host}/safety/app:1.0`;
      writeAs(user.name, join(first, "images.ts"), readFileSync(join(first, "images.ts"), "utf8").replace('cmd: ["cat", "/hello.txt"],', `cmd: ["cat", "/hello.txt"],\n  tags: [${JSON.stringify(ref)}],`));
      expectOk(await mstage(["up", "-q", "--push"]), "build and push the base");
      writeAs(user.name, join(third, "images.ts"), readerOf("pulled", "image", `image(${JSON.stringify(ref)})`));
      const puller = mstageAs(user.name, third, pullStore);
      await sameOfflineAfter(puller, third, "pulled", async () => {
        await registry.stop();
        // gc --max-size drops the least recently used results first; the pulled base's own record
        // (written before the stage's) goes first. Drop just that one, then let gc collect.
        const results = join(pullStore, "results");
        const baseRecord = readdirSync(results).find((f) => (JSON.parse(readFileSync(join(results, f), "utf8")) as { stage?: string }).stage?.startsWith("image "));
        assert.ok(baseRecord, "the pulled base has a record of its own");
        rmSync(join(results, baseRecord));
        expectOk(await puller(["gc"]), "gc");
      });
    });
  });
}
