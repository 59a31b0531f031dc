// `mstage doctor`: checks that this machine can run rootless builds and says how to fix what is missing.
import kleur from "kleur";
import { runDoctorChecks, type DoctorCheck } from "@mstage/runtime";
import type { GlobalOptions } from "../options.ts";

export default async function doctor(_args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const checks = await runDoctorChecks({ storeDir: g.store });
  const color = g.color && process.stdout.isTTY === true;
  if (opts.json) process.stdout.write(JSON.stringify(checks, null, 2) + "\n");
  else process.stdout.write(renderChecks(checks, { color, quiet: g.quiet }));
  return checks.some((c) => c.required && !c.ok) ? 1 : 0;
}

export function renderChecks(checks: DoctorCheck[], o: { color: boolean; quiet: boolean }): string {
  const k = kleur;
  k.enabled = o.color;
  const lines: string[] = [];
  for (const c of checks) {
    if (o.quiet && c.ok) continue;
    const mark = c.ok ? k.green("✔") : c.required ? k.red("✖") : k.yellow("!");
    lines.push(`${mark} ${c.name}: ${c.ok ? k.dim(c.detail) : c.detail}`);
    if (!c.ok && c.fix) lines.push(`    fix: ${k.bold(c.fix)}`);
  }
  const failed = checks.filter((c) => c.required && !c.ok).length;
  const warned = checks.filter((c) => !c.required && !c.ok).length;
  if (failed) lines.push(k.red(`${failed} required check${failed > 1 ? "s" : ""} failed: rootless builds will not work until fixed.`));
  else if (warned) lines.push(k.yellow(`ready to build, with ${warned} limitation${warned > 1 ? "s" : ""} above.`));
  else lines.push(k.green("ready for rootless builds."));
  return lines.join("\n") + "\n";
}
