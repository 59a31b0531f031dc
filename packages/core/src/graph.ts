// The stage graph: edges from `from` (a stage base, or a tarball of a stage's path) and from
// `someStage.path()` copies. Only what the targets reach is built; the rest is unused.
import { UserError } from "./errors.ts";
import type { Stage } from "./model.ts";
import { didYouMean } from "./suggest.ts";

export interface StageGraph {
  /** Stages the targets need, topological: dependencies first, otherwise in definition order. */
  order: Stage[];
  targets: Stage[];
  /** Defined stages no target reaches: never built. */
  unused: Stage[];
  /** The stages `s` reads from, in spec order (base first). */
  deps(s: Stage): Stage[];
}

/** The stages a stage depends on directly: its base, its tarball's stage, its copies' stages. */
export function stageDeps(s: Stage): Stage[] {
  const out: Stage[] = [];
  const add = (d: Stage) => {
    if (!out.includes(d)) out.push(d);
  };
  const from = s.spec.from;
  if (from.kind === "stage") add(from.stage);
  if (from.kind === "tarball" && from.source.kind === "stage-path") add(from.source.stage);
  for (const [, source] of s.spec.copy) if (source.kind === "stage-path") add(source.stage);
  for (const b of s.spec.stageBinds ?? []) add(b.from.stage);
  return out;
}

/**
 * @param stages every stage the config defined, in definition order
 * @param targets the exported stages
 * @param selected stage names chosen on the command line; replace `targets` when given
 */
export function buildGraph(stages: Stage[], targets: Stage[], selected?: string[]): StageGraph {
  const all = [...stages];
  // Stages reached only through references (defined outside the collection) still belong.
  for (const s of [...all, ...targets]) collect(s, all);

  let chosen = targets;
  if (selected && selected.length > 0) {
    const byName = new Map(all.map((s) => [s.name, s]));
    chosen = selected.map((name) => {
      const s = byName.get(name);
      if (!s) {
        const known = [...byName.keys()];
        throw new UserError(`no stage named "${name}"${didYouMean(name, known)}; stages: ${known.join(", ") || "(none)"}`);
      }
      return s;
    });
  }

  const order: Stage[] = [];
  const seen = new Set<Stage>();
  const visit = (s: Stage) => {
    if (seen.has(s)) return;
    seen.add(s);
    for (const d of stageDeps(s)) visit(d);
    order.push(s);
  };
  // Visit in definition order so the listing follows images.ts.
  const reach = new Set<Stage>();
  const mark = (s: Stage) => {
    if (reach.has(s)) return;
    reach.add(s);
    stageDeps(s).forEach(mark);
  };
  chosen.forEach(mark);
  for (const s of all) if (reach.has(s)) visit(s);

  return {
    order,
    targets: [...new Set(chosen)],
    unused: all.filter((s) => !reach.has(s)),
    deps: stageDeps,
  };
}

function collect(s: Stage, all: Stage[]): void {
  for (const d of stageDeps(s)) {
    if (!all.includes(d)) {
      all.splice(all.indexOf(s), 0, d);
      collect(d, all);
    }
  }
  if (!all.includes(s)) all.push(s);
}
