// Store integrity: a byte flipped in a store blob or an extracted layer, as a failing disk would,
// is never exported into ./oci; `mstage gc --verify` finds it, removes it, says what, and the next
// `up` builds again what needed it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mstage, type CliResult } from "./helpers/mstage-cli.ts";
import { treeListing } from "./helpers/listing.ts";

const PROJECT = (cmd: string) => `import { inline, scratch, stage } from "mstage";
export const base = stage("base", { from: scratch(), copy: { "/hello.txt": inline("hello\\n") } });
export const app = stage("app", { from: base, copy: { "/b.txt": inline("b\\n".repeat(1000)) }, cmd: [${JSON.stringify(cmd)}] });
`;

/** Flips one byte in the middle of `file`, in place (same inode), as a failing disk would. */
function flipByte(file: string): void {
  const fd = openSync(file, "r+");
  try {
    const size = readFileSync(file).length;
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, size >> 1);
    b[0]! ^= 0xff;
    writeSync(fd, b, 0, 1, size >> 1);
  } finally {
    closeSync(fd);
  }
}

function layoutSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(dir, "blobs", "sha256"))) out[name] = createHash("sha256").update(readFileSync(join(dir, "blobs", "sha256", name))).digest("hex");
  out["index.json"] = readFileSync(join(dir, "index.json"), "utf8");
  return out;
}

/**
 * Runs `fn` in a fresh project (PROJECT("/one") as its images.ts, removed afterwards) with a store
 * inside it and `run`, the CLI on that store.
 */
function inProject(prefix: string, fn: (dir: string, store: string, run: (...args: string[]) => CliResult) => void): void {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const store = join(dir, "store");
  try {
    writeFileSync(join(dir, "images.ts"), PROJECT("/one"));
    fn(dir, store, (...args) => mstage(dir, ["--store", store, ...args]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function layoutIntact(dir: string): void {
  for (const [name, hash] of Object.entries(layoutSnapshot(dir))) if (name !== "index.json") assert.equal(hash, name, `./oci blob ${name} does not match its name`);
}

test("a byte flipped in a store blob is refused at export, ./oci stays as it was; gc --verify removes it and up builds it again", () => {
  inProject("mstage-verify--", (dir, store, run) => {
    const first = run("up", "-q");
    assert.equal(first.code, 0, first.stderr);
    layoutIntact(join(dir, "oci"));
    const index = JSON.parse(readFileSync(join(dir, "oci", "index.json"), "utf8"));
    const appManifest = index.manifests.find((m: { annotations: Record<string, string> }) => m.annotations["org.opencontainers.image.ref.name"] === "app").digest as string;
    const manifest = JSON.parse(readFileSync(join(dir, "oci", "blobs", "sha256", appManifest.slice(7)), "utf8"));
    const victim = manifest.layers.at(-1).digest as string;
    const before = layoutSnapshot(join(dir, "oci"));

    flipByte(join(store, "blobs", "sha256", victim.slice(7)));
    assert.deepEqual(layoutSnapshot(join(dir, "oci")), before, "damage in the store reached ./oci");

    // A config-only change: ./oci is written again from the store's blobs.
    writeFileSync(join(dir, "images.ts"), PROJECT("/two"));
    const refused = run("up", "-q");
    assert.equal(refused.code, 1, refused.stderr + refused.stdout);
    assert.match(refused.stderr, new RegExp(`store blob .*${victim.slice(7)} does not match its digest .*mstage gc --verify`));
    assert.doesNotMatch(refused.stderr, /internal error/);
    assert.deepEqual(layoutSnapshot(join(dir, "oci")), before, "a refused export changed ./oci");

    const verify = run("gc", "--verify");
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, new RegExp(`corrupt blob ${victim}: removed`));
    assert.match(verify.stdout, /removed result [0-9a-f]{12} app: it needs a corrupt blob/);
    assert.match(verify.stdout, /verified \d+ blob\(s\) and \d+ extracted layer\(s\).*: 1 corrupt, removed/);

    const again = run("up", "-q");
    assert.equal(again.code, 0, again.stderr);
    layoutIntact(join(dir, "oci"));
    const clean = run("gc", "--verify");
    assert.match(clean.stdout, /: all intact/);
  });
});

test("a file changed in an extracted layer is found by gc --verify and removed; the store is intact after the next up", () => {
  inProject("mstage-verify-layer--", (dir, store, run) => {
    assert.equal(run("up", "-q").code, 0);
    // Every built stage's upper dir is kept as its layer: pick the base's, the one with hello.txt.
    const layers = readdirSync(join(store, "layers")).filter((l) => existsSync(join(store, "layers", l, "hello.txt")));
    assert.equal(layers.length, 1, "the base's layer is in the store's extracted layers");
    const hello = join(store, "layers", layers[0]!, "hello.txt");
    const listing = treeListing(join(store, "layers", layers[0]!));
    writeFileSync(hello, "jello\n");

    const verify = run("gc", "--verify");
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, new RegExp(`corrupt extracted layer sha256:${layers[0]}: removed`));
    assert.doesNotMatch(verify.stdout, /removed result/, "its tar is intact: no result needs rebuilding");

    assert.ok(!existsSync(join(store, "layers", layers[0]!)), "the corrupt layer dir is gone");

    const rebuilt = run("up", "-q", "--no-cache");
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    // Extracted again only if the builder needs it; when it is, it is as it was.
    if (existsSync(join(store, "layers", layers[0]!))) {
      assert.deepEqual(treeListing(join(store, "layers", layers[0]!)), listing, "the layer was extracted again as it was");
      assert.equal(readFileSync(hello, "utf8"), "hello\n");
    }
    assert.match(run("gc", "--verify").stdout, /: all intact/);
  });
});
