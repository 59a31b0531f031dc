import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StageInputs } from "./keys.ts";
import { loadState, saveState, statePath, type ProjectState } from "./state.ts";

function stateWith(files: StageInputs["files"]): ProjectState {
  const inputs = { format: 1, copy: [], binds: [], config: {}, files } as unknown as StageInputs;
  return { version: 1, stages: { app: { layerKey: "sha256:" + "1".repeat(64), configKey: "sha256:" + "2".repeat(64), inputs, builtAt: "" } } };
}

test("file fingerprints live beside state.json and come back when a reason reads them", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-state-"));
  const files = { "./src": '"a.txt","f644:0123456789abcdef"\n' };
  await saveState(dir, stateWith(files));
  const text = readFileSync(statePath(dir), "utf8");
  assert.ok(!text.includes("a.txt"), "state.json holds no file list");
  const loaded = await loadState(dir);
  assert.deepEqual(loaded.stages.app!.inputs.files, files);
  // Saved again unchanged, they survive a round trip that never read them.
  await saveState(dir, await loadState(dir));
  assert.deepEqual((await loadState(dir)).stages.app!.inputs.files, files);
});

test("a files.json that is not the one state.json names gives no fingerprints, never wrong ones", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-state-"));
  await saveState(dir, stateWith({ "./src": '"a.txt","f644:0123456789abcdef"\n' }));
  writeFileSync(join(dir, ".mstage", "files.json"), JSON.stringify({ app: { "./src": '"b.txt","f644:fedcba9876543210"\n' } }));
  assert.deepEqual((await loadState(dir)).stages.app!.inputs.files, {});
});

test("a state.json written before, with its file lists inline, is read as it is", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-state-"));
  const files = { "./src": { "a.txt": "f644:0123456789abcdef" } };
  const old = stateWith(files);
  await saveState(dir, old);
  writeFileSync(statePath(dir), JSON.stringify(old));
  assert.deepEqual((await loadState(dir)).stages.app!.inputs.files, files);
});
