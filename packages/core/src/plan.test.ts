import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { debian, image } from "./api/index.ts";
import { stage } from "./api/stage.ts";
import { buildGraph } from "./graph.ts";
import type { ExternalBase } from "./base-identity.ts";
import { planStages } from "./plan.ts";

test("plan resolves independent external bases side by side, not one after another", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-plan-"));
  try {
    const a = stage("p-pulled", { from: image("registry.example/a:1") });
    const b = stage("p-debian", { from: debian({ suite: "bookworm", packages: ["hello"] }) });
    const started: string[] = [];
    let release!: () => void;
    const bothStarted = new Promise<void>((r) => (release = r));
    // Each base's resolution returns only once the other one has started too, or after a second:
    // one after another, the first would wait the whole second alone.
    const resolveBase = async (base: ExternalBase) => {
      started.push(base.kind);
      if (started.length === 2) release();
      const overlapped = await Promise.race([bothStarted.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1000))]);
      return overlapped ? `sha256:${"a".repeat(64)}` : "";
    };
    const plan = await planStages(buildGraph([a, b], [a, b]), { projectDir: dir, state: { version: 1, stages: {} }, hasResult: async () => false, resolveBase });
    assert.deepEqual(started.sort(), ["debian", "image"]);
    for (const e of plan.entries) assert.equal((e.inputs!.base as { identity?: string }).identity, `sha256:${"a".repeat(64)}`, `${e.stage.name}'s base resolved alongside the other`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
