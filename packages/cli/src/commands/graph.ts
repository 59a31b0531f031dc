// `mstage graph`: the stage graph as text, dot or mermaid.
import { UserError, buildGraph } from "@mstage/core";
import { loadConfig } from "../config/load.ts";
import type { GlobalOptions } from "../options.ts";
import { renderGraph, type GraphFormat } from "../render/graph.ts";

const FORMATS: GraphFormat[] = ["text", "dot", "mermaid"];

export default async function graph(args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const format = (opts.format ?? "text") as GraphFormat;
  if (!FORMATS.includes(format)) throw new UserError(`--format must be one of ${FORMATS.join(", ")}, got "${String(opts.format)}"`);
  const config = await loadConfig(g.file, { verbose: g.verbose });
  process.stdout.write(renderGraph(buildGraph(config.stages, config.targets, args), format));
  return 0;
}
