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
import { MSTAGE_BIN, expectOk, layoutRefs, mstageAs, testUsers, tool, treeFingerprint, userDir, writeAs } from "./up-harness.ts";

const busybox = existsSync("/bin/busybox") ? undefined : "busybox-static is not installed (/bin/busybox): run .ci/setup";
const missing = ["skopeo", "umoci", "runc"].filter((t) => !tool(t));

const BASE_PROJECT = `import { inline, local, scratch, stage } from "mstage";
export const base = stage("base", {
  from: scratch(),
  copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) },
  shell: ["/bin/busybox", "sh", "-c"],
  run: "/bin/busybox --install -s /bin",
});
export const app = stage("app", {
  from: base,
  copy: { "/hello.txt": inline("hello\\n") },
  cmd: ["cat", "/hello.txt"],
});
`;

for (const user of testUsers()) {
  test(`gc and plan respect what the store's users need (${user.name})`, { timeout: 5 * 60_000 }, async (t) => {
    const why = user.skip ?? busybox ?? (missing.length ? `missing ${missing.join(", ")}: run .ci/setup` : undefined);
    if (why) return t.skip(why);
    const first = userDir(user.name, "safety-a");
    const second = userDir(user.name, "safety-b");
    const store = userDir(user.name, "safety-store");
    t.after(() => {
      for (const d of [first, second, store]) rmSync(d, { recursive: true, force: true });
    });
    writeAs(user.name, join(first, "images.ts"), BASE_PROJECT);
    const mstage = mstageAs(user.name, first, store);
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
      writeAs(
        user.name,
        join(second, "images.ts"),
        `import { oci, stage } from "mstage";
export const layered = stage("layered", {
  from: oci(${JSON.stringify(join(first, "oci"))}, "app"),
  run: "cat /hello.txt > /seen.txt",
  cmd: ["cat", "/seen.txt"],
});
`,
      );
      const other = mstageAs(user.name, second, store);
      expectOk(await other(["up", "-q"]), "up on the oci() base");
      const built = layoutRefs(join(second, "oci"))["layered"];
      assert.ok(built);
      expectOk(await other(["gc"]), "gc");
      rmSync(join(second, "oci"), { recursive: true, force: true });
      const again = expectOk(await other(["up", "--offline", "--progress", "plain"]), "up --offline after gc");
      assert.match(again.stdout, /0 built, 1 cached/);
      assert.equal(layoutRefs(join(second, "oci"))["layered"], built);
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
      writeAs(user.name, join(first, "images.ts"), BASE_PROJECT.replace('cmd: ["cat", "/hello.txt"],', `cmd: ["cat", "/hello.txt"],\n  tags: [${JSON.stringify(ref)}],`));
      expectOk(await mstage(["up", "-q", "--push"]), "build and push the base");
      writeAs(
        user.name,
        join(third, "images.ts"),
        `import { image, stage } from "mstage";
export const pulled = stage("pulled", {
  from: image(${JSON.stringify(ref)}),
  run: "cat /hello.txt > /seen.txt",
  cmd: ["cat", "/seen.txt"],
});
`,
      );
      const puller = mstageAs(user.name, third, pullStore);
      expectOk(await puller(["up", "-q"]), "up on the image() base");
      const built = layoutRefs(join(third, "oci"))["pulled"];
      assert.ok(built);
      await registry.stop();
      // gc --max-size drops the least recently used results first; the pulled base's own record
      // (written before the stage's) goes first. Drop just that one, then let gc collect.
      const results = join(pullStore, "results");
      const baseRecord = readdirSync(results).find((f) => (JSON.parse(readFileSync(join(results, f), "utf8")) as { stage?: string }).stage?.startsWith("image "));
      assert.ok(baseRecord, "the pulled base has a record of its own");
      rmSync(join(results, baseRecord));
      expectOk(await puller(["gc"]), "gc");
      rmSync(join(third, "oci"), { recursive: true, force: true });
      const again = expectOk(await puller(["up", "--offline", "--progress", "plain"]), "up --offline after gc, registry stopped");
      assert.match(again.stdout, /0 built, 1 cached/);
      assert.equal(layoutRefs(join(third, "oci"))["pulled"], built);
    });
  });
}
