// How a plan reads: one line per stage (`+ new`, `~ rebuild: reason`, `~ config only: fields`,
// `= cached`, `· unused`), then a one-line summary; or the same as JSON.
import kleur from "kleur";
import { planHasChanges, type Plan, type PlanStatus } from "@mstage/core";

const SYMBOL: Record<PlanStatus, string> = { new: "+", rebuild: "~", config: "~", cached: "=", unused: "·" };

export function renderPlan(plan: Plan, o: { color: boolean; quiet?: boolean }): string {
  kleur.enabled = o.color;
  const paint: Record<PlanStatus, (s: string) => string> = {
    new: kleur.green,
    rebuild: kleur.yellow,
    config: kleur.cyan,
    cached: kleur.dim,
    unused: kleur.gray,
  };
  const width = Math.max(0, ...plan.entries.map((e) => e.stage.name.length));
  let out = "";
  if (!o.quiet) {
    for (const e of plan.entries) {
      const name = e.stage.name.padEnd(width);
      const line = `${SYMBOL[e.status]} ${e.target ? kleur.bold(name) : name}  ${describe(e.status, e.reasons)}`;
      out += paint[e.status](line) + "\n";
    }
  }
  // Docker users' .dockerignore applies silently otherwise: say so, since its syntax is Docker's.
  if (plan.ignoreFile === ".dockerignore" && !o.quiet) out += kleur.dim("local() sources leave out what .dockerignore lists (there is no .mstageignore)") + "\n";
  return out + summary(plan) + "\n";
}

function describe(status: PlanStatus, reasons: string[]): string {
  const why = reasons.join(", ");
  switch (status) {
    case "new":
      return why ? `new: ${why}` : "new";
    case "rebuild":
      return `rebuild: ${why}`;
    case "config":
      return why;
    case "cached":
      return why ? `cached (${why})` : "cached";
    case "unused":
      return "unused";
  }
}

export function counts(plan: Plan): Record<PlanStatus, number> {
  const c: Record<PlanStatus, number> = { new: 0, rebuild: 0, config: 0, cached: 0, unused: 0 };
  for (const e of plan.entries) c[e.status]++;
  return c;
}

/** "Plan: 1 new, 2 to rebuild, 1 config only, 3 cached, 1 unused." */
export function summary(plan: Plan): string {
  const c = counts(plan);
  const parts = [
    c.new && `${c.new} new`,
    c.rebuild && `${c.rebuild} to rebuild`,
    c.config && `${c.config} config only`,
    c.cached && `${c.cached} cached`,
    c.unused && `${c.unused} unused`,
  ].filter(Boolean);
  const head = planHasChanges(plan) ? "Plan" : "Plan: nothing to build";
  return parts.length ? `${head}${head === "Plan" ? ": " : " ("}${parts.join(", ")}${head === "Plan" ? "." : ")."}` : "Plan: no stages.";
}

export function planJson(plan: Plan): unknown {
  return {
    stages: plan.entries.map((e) => ({
      name: e.stage.name,
      status: e.status,
      reasons: e.reasons,
      target: e.target,
      layerKey: e.layerKey || null,
      configKey: e.configKey || null,
    })),
    summary: counts(plan),
    changes: planHasChanges(plan),
    filesRead: plan.filesRead,
    ignoreFile: plan.ignoreFile ?? null,
  };
}
