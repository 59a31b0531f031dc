// The stage graph as text, Graphviz dot or Mermaid: stages, their bases, and copy edges.
import type { Base, Stage, StageGraph } from "@mstage/core";

export type GraphFormat = "text" | "dot" | "mermaid";

interface Edge {
  from: string;
  to: string;
  kind: "from" | "copy" | "tarball";
}

function edgesOf(s: Stage): Edge[] {
  const out: Edge[] = [];
  const f = s.spec.from;
  if (f.kind === "stage") out.push({ from: f.stage.name, to: s.name, kind: "from" });
  if (f.kind === "tarball" && f.source.kind === "stage-path") out.push({ from: f.source.stage.name, to: s.name, kind: "tarball" });
  for (const [, src] of s.spec.copy) {
    if (src.kind === "stage-path" && !out.some((e) => e.from === src.stage.name && e.kind === "copy")) {
      out.push({ from: src.stage.name, to: s.name, kind: "copy" });
    }
  }
  return out;
}

/** How a base reads in the graph: `image docker.io/library/golang:1.22`, `scratch`, `stage build`. */
export function baseLabel(b: Base): string {
  switch (b.kind) {
    case "scratch":
      return "scratch";
    case "image":
      return `image ${b.ref}`;
    case "stage":
      return `stage ${b.stage.name}`;
    case "oci":
      return `oci ${b.layout}${b.ref ? ":" + b.ref : ""}`;
    case "tarball":
      return `tarball ${b.source.kind === "local" ? b.source.path : `${b.source.stage.name}:${b.source.path}`}`;
    case "debian":
      return `debian ${b.suite}${b.packages.length ? " +" + b.packages.join(",") : ""}`;
  }
}

export function renderGraph(graph: StageGraph, format: GraphFormat): string {
  const stages = [...graph.order, ...graph.unused];
  const targets = new Set(graph.targets);
  const unused = new Set(graph.unused);
  const edges = stages.flatMap(edgesOf);
  const external = (s: Stage) => (s.spec.from.kind === "stage" || (s.spec.from.kind === "tarball" && s.spec.from.source.kind === "stage-path") ? undefined : baseLabel(s.spec.from));

  if (format === "dot") {
    const q = (x: string) => JSON.stringify(x);
    const lines = ["digraph mstage {", "  rankdir=LR;", "  node [shape=box];"];
    const declared = new Set<string>();
    for (const s of stages) {
      const style = targets.has(s) ? ", style=bold" : unused.has(s) ? ", style=dashed, color=gray" : "";
      lines.push(`  ${q(s.name)} [label=${q(s.name + (targets.has(s) ? " (image)" : ""))}${style}];`);
      const ext = external(s);
      if (ext) {
        if (!declared.has(ext)) lines.push(`  ${q("base:" + ext)} [label=${q(ext)}, shape=ellipse];`);
        declared.add(ext);
        lines.push(`  ${q("base:" + ext)} -> ${q(s.name)};`);
      }
    }
    for (const e of edges) lines.push(`  ${q(e.from)} -> ${q(e.to)}${e.kind === "from" ? "" : ` [style=dashed, label=${q(e.kind)}]`};`);
    lines.push("}");
    return lines.join("\n") + "\n";
  }

  if (format === "mermaid") {
    const id = (name: string) => "s_" + name.replace(/[^A-Za-z0-9_]/g, "_");
    const lines = ["graph LR"];
    const bases = new Map<string, string>();
    for (const s of stages) {
      lines.push(`  ${id(s.name)}${targets.has(s) ? `[["${s.name}"]]` : `["${s.name}"]`}`);
      const ext = external(s);
      if (ext) {
        if (!bases.has(ext)) bases.set(ext, `b${bases.size}`);
        lines.push(`  ${bases.get(ext)}(["${ext.replace(/"/g, "'")}"]) --> ${id(s.name)}`);
      }
    }
    for (const e of edges) lines.push(`  ${id(e.from)} ${e.kind === "from" ? "-->" : `-.${e.kind}.->`} ${id(e.to)}`);
    for (const s of graph.unused) lines.push(`  style ${id(s.name)} stroke-dasharray: 5 5`);
    return lines.join("\n") + "\n";
  }

  const width = Math.max(0, ...stages.map((s) => s.name.length));
  const lines: string[] = [];
  for (const s of stages) {
    const copies = [...new Set(edgesOf(s).filter((e) => e.kind === "copy").map((e) => e.from))];
    const parts = [`from ${baseLabel(s.spec.from)}`];
    if (copies.length) parts.push(`copies from ${copies.join(", ")}`);
    const mark = targets.has(s) ? "  [image]" : unused.has(s) ? "  [unused]" : "";
    lines.push(`${s.name.padEnd(width)}  ${parts.join("; ")}${mark}`);
  }
  return lines.join("\n") + (lines.length ? "\n" : "");
}
