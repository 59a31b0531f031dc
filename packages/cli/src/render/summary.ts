// The end of `mstage up`: how many stages were built or reused, and what was written where.
import { relative } from "node:path";
import kleur from "kleur";
import type { OutputLine } from "../app/up-noop.ts";

export interface SummaryView {
  projectDir: string;
  built: number;
  cached: number;
  configOnly: number;
  outputs: OutputLine[];
  ms: number;
}
import { formatDuration, formatSize } from "./progress.ts";

export function renderSummary(s: SummaryView, o: { quiet: boolean; color: boolean }): string {
  kleur.enabled = o.color;
  const lines: string[] = [];
  if (o.quiet) {
    for (const out of s.outputs) lines.push(`${out.dest} ${out.ref} ${out.digest}`);
    return lines.length ? lines.join("\n") + "\n" : "";
  }
  const parts = [`${s.built} built`, `${s.cached} cached`];
  if (s.configOnly) parts.push(`${s.configOnly} config only`);
  lines.push(`${kleur.bold("done")} in ${formatDuration(s.ms)}: ${parts.join(", ")}`);
  const width = Math.max(0, ...s.outputs.map((x) => x.ref.length));
  let lastDest = "";
  for (const out of s.outputs) {
    if (out.dest !== lastDest) {
      lines.push(`  ${kleur.cyan(shortDest(out.dest, s.projectDir))}`);
      lastDest = out.dest;
    }
    lines.push(`    ${out.ref.padEnd(width)}  ${out.digest.slice(0, 19)}…  ${kleur.gray(formatSize(out.size))}`);
  }
  return lines.join("\n") + "\n";
}

function shortDest(dest: string, projectDir: string): string {
  const i = dest.indexOf(":");
  const path = dest.slice(i + 1);
  const rel = relative(process.cwd(), path) || ".";
  void projectDir;
  return `${dest.slice(0, i)}:${rel.startsWith("..") ? path : rel}`;
}
