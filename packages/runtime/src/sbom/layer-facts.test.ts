import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Digest } from "../oci/digest.ts";
import { Store } from "../store/store.ts";
import { LayerFacts } from "./layer-facts.ts";

const TOP = `sha256:${"1".repeat(64)}` as Digest;
const BELOW = `sha256:${"2".repeat(64)}` as Digest;

test("a file's checksums go to the record of the topmost layer that has it, through real directories only", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-layer-facts-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (path: string, data: string) => {
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, data);
  };
  const [top, below, merged] = ["top", "below", "merged"].map((d) => join(dir, d)) as [string, string, string];
  // Below: four files. Top: a new version of one, a sibling in the same dir, and a file where
  // below has the directory `opt` (what overlayfs shows is top's file, no layer owns opt/tool).
  write(join(below, "usr/bin/a"), "a below");
  write(join(below, "usr/bin/b"), "b below");
  write(join(below, "usr/lib/deep/c"), "c below");
  write(join(below, "opt/tool"), "tool below");
  write(join(top, "usr/bin/a"), "a on top");
  write(join(top, "usr/bin/n"), "new on top");
  write(join(top, "opt"), "a file on top");
  // The merged view: each file as the layer that shows it has it.
  const shownBy = { "usr/bin/a": top, "usr/bin/n": top, "usr/bin/b": below, "usr/lib/deep/c": below };
  for (const [f, layer] of Object.entries(shownBy)) write(join(merged, f), readFileSync(join(layer, f), "utf8"));
  write(join(merged, "opt/tool"), "not from any layer");
  const store = await Store.open(join(dir, "store"));
  const facts = new LayerFacts(store, merged, [
    { diffId: TOP, dir: top },
    { diffId: BELOW, dir: below },
  ]);
  for (const f of [...Object.keys(shownBy), "opt/tool"]) await facts.checksums(`/${f}`, join(merged, f));
  await facts.save();
  const record = (d: Digest) => Object.keys((JSON.parse(readFileSync(store.layout.layerScan(d), "utf8")) as { checksums: object }).checksums).sort();
  assert.deepEqual(record(TOP), ["usr/bin/a", "usr/bin/n"]);
  assert.deepEqual(record(BELOW), ["usr/bin/b", "usr/lib/deep/c"]);
});
