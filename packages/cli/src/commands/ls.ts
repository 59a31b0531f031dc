// `mstage ls`: the stage results in the store, most recently used first, with sizes and ages.
import { relative } from "node:path";
import kleur from "kleur";
import { Store } from "@mstage/runtime";
import type { GlobalOptions } from "../options.ts";
import { formatSize } from "../render/progress.ts";

export function formatAge(from: Date, now = new Date()): string {
  const s = Math.max(0, Math.round((now.getTime() - from.getTime()) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export default async function ls(_args: string[], _opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  kleur.enabled = g.color && process.stdout.isTTY === true;
  const store = await Store.open(g.store);
  const results = store.list();
  if (g.quiet) {
    for (const r of results) process.stdout.write(`${r.key}\n`);
    return 0;
  }
  if (!results.length) {
    process.stdout.write(`no stages in the store ${g.store}\n`);
    return 0;
  }
  const rows = results.map((r) => [
    r.key.slice(0, 19),
    r.stage ?? "?",
    r.project ? shortPath(r.project) : "",
    String(r.layers),
    formatSize(r.ownSize),
    formatSize(r.size),
    formatAge(new Date(r.created)),
    formatAge(r.lastUsed),
  ]);
  const head = ["KEY", "STAGE", "PROJECT", "LAYERS", "LAYER", "IMAGE", "BUILT", "USED"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 3 && i <= 5 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ").trimEnd();
  process.stdout.write(kleur.bold(line(head)) + "\n");
  for (const r of rows) process.stdout.write(line(r) + "\n");
  process.stdout.write(kleur.gray(`${results.length} result(s) in ${g.store}`) + "\n");
  return 0;
}

function shortPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel === "" ? "." : rel.startsWith("..") ? p : rel;
}
