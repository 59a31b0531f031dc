// Records a project as built, through the same calls `mstage up` makes after building: the store's
// result record per stage key, then recordBuild + saveState. Only for projects no real `up` can build
// offline: plan-keys' fixture of fake image/oci/debian pins, and bench/plan.sh's 200-stage project.
// Plan tests on buildable projects (plan.test.ts) run a real `mstage up` instead.
import { join } from "node:path";
import { buildGraph, loadState, planStages, recordBuild, saveState } from "@mstage/core";
import { Store } from "@mstage/runtime";
import { loadConfig } from "../../packages/cli/src/config/load.ts";
import { createPlanContext } from "../../packages/cli/src/app/project.ts";

export async function recordProjectBuilt(projectDir: string, storeDir: string): Promise<void> {
  const config = await loadConfig(join(projectDir, "images.ts"));
  const graph = buildGraph(config.stages, config.targets);
  const ctx = await createPlanContext({ projectDir, store: storeDir });
  const plan = await planStages(graph, ctx);
  const store = await Store.open(storeDir);
  const state = await loadState(projectDir);
  for (const e of plan.entries) {
    if (e.status === "unused") continue;
    await store.putResult(e.layerKey, { key: e.layerKey, layers: [], config: {}, history: [], created: new Date(0).toISOString() } as never);
    recordBuild(state, e);
  }
  await saveState(projectDir, state);
}
