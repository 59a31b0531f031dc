// `mstage up`: plan, build what changed, write the outputs. Runs inside mstage's user namespace
// (re-executing itself there first), where layers owned by mapped ids can be read and written.
import { availableParallelism } from "node:os";
import { UserError } from "@mstage/core";
import { reexecInUserNamespace } from "@mstage/runtime";
import type { GlobalOptions } from "../options.ts";
import { createProgress, resolveProgressMode } from "../render/progress.ts";
import { renderSummary } from "../render/summary.ts";
import { parseOutputs, runUp } from "./up-run.ts";

export default async function up(args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const outputs = parseOutputs(opts.output);
  const jobs = parseJobs(opts.jobs);
  const mode = resolveProgressMode(opts.progress, g.quiet, process.stderr);
  if (opts.watch) throw new UserError("`mstage up --watch` is not available yet; run `mstage up` after saving");
  const reexec = reexecInUserNamespace(undefined, { onNote: (m) => process.stderr.write(`note: ${m}\n`) });
  if (reexec) await reexec;

  const progress = createProgress(mode);
  const controller = new AbortController();
  const onSignal = () => controller.abort(new UserError("interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const summary = await runUp({
      file: g.file,
      store: g.store,
      targets: args,
      outputs,
      jobs,
      noCache: noCacheOption(opts),
      refresh: opts.refresh === true,
      offline: opts.offline === true,
      verbose: g.verbose,
      signal: controller.signal,
      onEvent: (e) => progress.onEvent(e),
    });
    progress.stop();
    process.stdout.write(renderSummary(summary, { quiet: g.quiet, color: g.color && process.stdout.isTTY === true }));
    return 0;
  } finally {
    progress.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

function parseJobs(v: unknown): number {
  if (v === undefined || v === true) return availableParallelism();
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--jobs must be a whole number ≥ 1, got ${JSON.stringify(v)}`);
  return n;
}

/** cac turns `--no-cache` into `cache: false` and `--no-cache=build` / `--no-cache build` into a name. */
function noCacheOption(opts: Record<string, unknown>): boolean | string | undefined {
  const v = opts.cache;
  if (v === false) return true;
  if (typeof v === "string" && v !== "") return v;
  return undefined;
}
