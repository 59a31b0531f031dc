// The stage graph: edges from `from` (a stage base, or a tarball of a stage's path) and from
// `someStage.path()` copies. Only what the targets reach is built; the rest is unused. Its nodes
// are per-platform instances of the stages (instances.ts).
import { UserError } from "./errors.ts";
import { instantiate, specDeps, type InstanceOptions, type StageOutput } from "./instances.ts";
import type { Stage } from "./model.ts";
import { didYouMean } from "./suggest.ts";

export interface StageGraph {
  /**
   * Stage instances the targets need, topological: dependencies first, otherwise in definition
   * order; a stage built for several platforms appears once per platform ("hello [linux/arm64]").
   */
  order: Stage[];
  /** The instances written out as images. */
  targets: Stage[];
  /** Per target stage: its instances, and whether its ref is an image index. */
  outputs: StageOutput[];
  /** Defined stages no target reaches: never built. */
  unused: Stage[];
  /** The stages `s` reads from, in spec order (base first). */
  deps(s: Stage): Stage[];
}

/** The stages a stage depends on directly: its base, its tarball's stage, its copies' stages. */
export function stageDeps(s: Stage): Stage[] {
  return specDeps(s.spec);
}

/** `roots` and every stage they depend on, each after its dependencies (depth first, roots in the order given). */
export function dependenciesFirst(roots: Iterable<Stage>): Stage[] {
  const order: Stage[] = [];
  const seen = new Set<Stage>();
  const visit = (s: Stage): void => {
    if (seen.has(s)) return;
    seen.add(s);
    for (const d of stageDeps(s)) visit(d);
    order.push(s);
  };
  for (const s of roots) visit(s);
  return order;
}

/**
 * @param stages every stage the config defined, in definition order
 * @param targets the exported stages
 * @param selected stage names chosen on the command line; replace `targets` when given
 * @param options.platforms `--platform`: which platforms to build
 */
export function buildGraph(stages: Stage[], targets: Stage[], selected?: string[], options: InstanceOptions = {}): StageGraph {
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

  // In definition order, so the listing follows images.ts.
  const reach = new Set(dependenciesFirst(chosen));
  const order = dependenciesFirst(all.filter((s) => reach.has(s)));

  // Spec functions may reach stages for some platforms only; what they reach is what is built.
  const built = instantiate(order, [...new Set(chosen)], options);
  return {
    order: built.order,
    targets: built.outputs.flatMap((o) => o.instances),
    outputs: built.outputs,
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
