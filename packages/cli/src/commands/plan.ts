// `mstage plan`: what `up` would do to each stage, and why. Loads no runtime code unless a tag must
// be resolved in a registry (not pinned in images.lock, or --refresh).
import { buildGraph, planHasChanges, planStages } from "@mstage/core";
import { loadConfig } from "../config/load.ts";
import { createPlanContext, requireTargets } from "../app/project.ts";
import { platformOption, type GlobalOptions } from "../options.ts";
import { renderPlan, planJson } from "../render/plan.ts";
import { parseRegistryOptions } from "./registry-options.ts";

type Runtime = typeof import("@mstage/runtime");

/** --cache-from for plan: which stage keys a cache repository holds (HEAD only; nothing is pulled). */
class RemoteResults {
  readonly found = new Map<string, string>();
  /** The client's notes, e.g. which registries.conf mirror resolved a base. */
  readonly notes: string[] = [];
  private rt?: Promise<Runtime>;
  private c?: InstanceType<Runtime["RegistryClient"]>;
  constructor(
    private readonly caches: string[],
    private readonly insecure: string[],
  ) {}
  runtime(): Promise<Runtime> {
    return (this.rt ??= import("@mstage/runtime"));
  }
  async client(): Promise<InstanceType<Runtime["RegistryClient"]>> {
    return (this.c ??= new (await this.runtime()).RegistryClient({ insecure: this.insecure, onNote: (m) => this.notes.push(m) }));
  }
  async has(key: string): Promise<boolean> {
    for (const ref of this.caches) {
      const cache = new (await this.runtime()).RegistryCache(ref, { client: await this.client() });
      if (await cache.has(key)) {
        this.found.set(key, cache.name);
        return true;
      }
    }
    return false;
  }
  async close(): Promise<void> {
    await this.c?.close();
  }
}

export default async function plan(args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const config = await loadConfig(g.file, { verbose: g.verbose });
  const graph = buildGraph(config.stages, config.targets, args, { platforms: platformOption(opts.platform) });
  requireTargets(graph, config.file);
  const registry = parseRegistryOptions(opts);
  const remote = new RemoteResults(opts.offline ? [] : (registry.cacheFrom ?? []), registry.insecure ?? []);
  const ctx = await createPlanContext({
    projectDir: config.projectDir,
    store: g.store,
    refresh: opts.refresh === true,
    // Only a tag images.lock does not pin (or --refresh) loads the registry client; --offline never does.
    resolveImage: opts.offline ? undefined : async (base) => (await remote.runtime()).resolveDigest(base.ref, { client: await remote.client() }),
    offline: opts.offline === true,
    allowUnpinned: opts.allowUnpinned === true,
    // A git ref images.lock does not pin (or every one, with --refresh) is asked of its remote.
    resolveGit: opts.offline ? undefined : async (url, ref) => (await remote.runtime()).resolveGitRef(url, ref),
  });
  let result;
  try {
    result = await planStages(graph, { ...ctx, hasResult: async (key) => (await ctx.hasResult(key)) || (await remote.has(key)) });
  } finally {
    await remote.close();
  }
  for (const e of result.entries) {
    const where = remote.found.get(e.layerKey);
    if (e.status === "cached" && where) e.reasons = [`remote ${where}`];
  }
  if (!g.quiet) for (const w of ctx.warnings) process.stderr.write(`warning: ${w}\n`);
  if (!g.quiet) for (const n of remote.notes) process.stderr.write(`note: ${n}\n`);
  if (opts.json) process.stdout.write(JSON.stringify(planJson(result), null, 2) + "\n");
  else process.stdout.write(renderPlan(result, { color: g.color && process.stdout.isTTY === true, quiet: g.quiet }));
  return opts.detailedExitcode && planHasChanges(result) ? 2 : 0;
}
