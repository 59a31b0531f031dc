// A stage's layer dir is placed in the store before its files are on disk (the next stage builds on
// it at once; it is synced before its result is recorded). If the machine loses power in between,
// the dir may be there with files that lost their data: the next build must not build on it.
// A power loss cannot be made here; what it leaves can: the dir, a file of it emptied, the
// `.pending` file naming a process that is gone, and no result.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mstage } from "./helpers/mstage-cli.ts";

const PROJECT = `import { local, scratch, stage } from "mstage";
const base = stage("base", {
  from: scratch(),
  copy: { "/bin/busybox": local("/bin/busybox", { mode: 0o755 }) },
  shell: ["/bin/busybox", "sh", "-c"],
  run: "/bin/busybox mkdir /data && /bin/busybox echo good > /data/f",
});
export const app = stage("app", {
  from: base,
  shell: ["/bin/busybox", "sh", "-c"],
  run: "/bin/busybox cat /data/f > /copy",
});
`;

/** The store's layer dirs (by hex) that hold `path`. */
function layersWith(store: string, path: string): string[] {
  const dir = join(store, "layers");
  return readdirSync(dir).filter((hex) => /^[a-f0-9]{64}$/.test(hex) && existsSync(join(dir, hex, path)));
}

/** The content of `path` in the image `ref` of the layout at `oci`, from its layers' tars. */
function fileInImage(oci: string, path: string): string {
  const r = spawnSync("sh", ["-c", `for b in ${oci}/blobs/sha256/*; do tar -xzOf "$b" "${path}" 2>/dev/null; done`], { encoding: "utf8" });
  return r.stdout;
}

test("a layer dir left by a build that died before it was durable is committed again, not built on", (t) => {
  if (!existsSync("/bin/busybox")) return t.skip("busybox-static is not installed (/bin/busybox): run .ci/setup");
  const dir = mkdtempSync(join(tmpdir(), "mstage-durable-"));
  const store = join(dir, "store");
  try {
    writeFileSync(join(dir, "images.ts"), PROJECT);
    const first = mstage(dir, ["--store", store, "up", "-q"]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(fileInImage(join(dir, "oci"), "copy"), "good\n");
    assert.deepEqual(readdirSync(join(store, "layers")).filter((n) => n.endsWith(".pending")), [], "a finished build leaves nothing pending");

    // What a power loss between the placing of base's layer and its sync leaves behind.
    const [hex] = layersWith(store, "data/f");
    assert.ok(hex, "base's layer dir");
    truncateSync(join(store, "layers", hex, "data/f"), 0);
    const gone = spawnSync("true").pid!;
    const boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    writeFileSync(join(store, "layers", `${hex}.pending`), `${gone}.1 ${boot} ${readlinkSync("/proc/self/ns/pid")}\n`);
    rmSync(join(store, "results"), { recursive: true, force: true });
    rmSync(join(dir, "oci"), { recursive: true, force: true });

    const again = mstage(dir, ["--store", store, "up", "--progress", "plain"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout + again.stderr, /\[base\] (building|rebuilding)/);
    assert.equal(fileInImage(join(dir, "oci"), "copy"), "good\n", "app was built on base's files as its step wrote them");
    assert.equal(readFileSync(join(store, "layers", hex, "data/f"), "utf8"), "good\n", "the layer dir is the fresh commit");
    assert.ok(!existsSync(join(store, "layers", `${hex}.pending`)));

    // One a live process (this test) placed is its build's: trusted, and left to it.
    writeFileSync(join(store, "layers", `${hex}.pending`), `${process.pid}.${procStart(process.pid)} ${boot} ${readlinkSync("/proc/self/ns/pid")}\n`);
    const plan = mstage(dir, ["--store", store, "plan"]);
    assert.equal(plan.code, 0, plan.stderr);
    assert.ok(existsSync(join(store, "layers", hex)), "a live owner's dir stays");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot. */
function procStart(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}
