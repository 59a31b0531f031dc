// `mstage plan`: what `up` would do to each stage, and why. Loads no runtime code unless a tag must
// be resolved in a registry (not pinned in images.lock, or --refresh).
import { buildGraph, planHasChanges, planStages } from "@mstage/core";
import { loadConfig } from "../config/load.ts";
import { createPlanContext } from "../config/project.ts";
import type { GlobalOptions } from "../options.ts";
import { renderPlan, planJson } from "../render/plan.ts";

export default async function plan(args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const config = await loadConfig(g.file, { verbose: g.verbose });
  const graph = buildGraph(config.stages, config.targets, args);
  const ctx = await createPlanContext({
    projectDir: config.projectDir,
    store: g.store,
    refresh: opts.refresh === true,
    // Only a tag images.lock does not pin (or --refresh) loads the registry client; --offline never does.
    resolveImage: opts.offline ? undefined : async (base) => (await import("@mstage/runtime")).resolveDigest(base.ref),
  });
  const result = await planStages(graph, ctx);
  if (opts.json) process.stdout.write(JSON.stringify(planJson(result), null, 2) + "\n");
  else process.stdout.write(renderPlan(result, { color: g.color && process.stdout.isTTY === true, quiet: g.quiet }));
  return opts.detailedExitcode && planHasChanges(result) ? 2 : 0;
}
