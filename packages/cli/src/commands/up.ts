// `mstage up`: plan, build what changed, write the outputs. Building runs inside mstage's user
// namespace (re-executing itself there first), where layers owned by mapped ids can be read and
// written. A no-op `up` is decided before that, with core alone: no namespace, no runtime loaded.
import { availableParallelism } from "node:os";
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";
import { createProgress, resolveProgressMode } from "../render/progress.ts";
import { renderSummary } from "../render/summary.ts";
import { checkNoop, parseOutputs } from "../app/up-noop.ts";
import { parseRegistryOptions } from "./registry-options.ts";

export default async function up(args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const started = Date.now();
  const outputs = parseOutputs(opts.output);
  const jobs = parseJobs(opts.jobs);
  const mode = resolveProgressMode(opts.progress, g.quiet, process.stderr);
  const noCache = noCacheOption(opts);
  if (opts.watch) return (await import("./watch.ts")).default(args, opts, g);
  const color = g.color && process.stdout.isTTY === true;

  const registry = parseRegistryOptions(opts);
  if (!process.env.MSTAGE_USERNS && !noCache && opts.refresh !== true && !registry.push && !registry.cacheFrom?.length && !registry.cacheTo?.length) {
    const noop = await checkNoop({ file: g.file, store: g.store, targets: args, outputs, verbose: g.verbose });
    if (noop) {
      process.stdout.write(renderSummary({ ...noop, ms: Date.now() - started }, { quiet: g.quiet, color }));
      return 0;
    }
  }

  const runtime = await import("@mstage/runtime");
  const reexec = runtime.reexecInUserNamespace(undefined, { onNote: (m) => process.stderr.write(`note: ${m}\n`) });
  if (reexec) await reexec;

  const { runUp } = await import("../app/up-run.ts");
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
      noCache,
      refresh: opts.refresh === true,
      offline: opts.offline === true,
      registry,
      verbose: g.verbose,
      signal: controller.signal,
      onEvent: (e) => progress.onEvent(e),
    });
    progress.stop();
    process.stdout.write(renderSummary({ ...summary, ms: Date.now() - started }, { quiet: g.quiet, color }));
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

/** `--no-cache` is `cache: false`; `--no-cache=build` reaches us as `--rebuild build` (see main.ts). */
function noCacheOption(opts: Record<string, unknown>): boolean | string | undefined {
  if (typeof opts.rebuild === "string" && opts.rebuild !== "") return opts.rebuild;
  const v = opts.cache;
  if (v === false) return true;
  if (typeof v === "string" && v !== "") return v;
  return undefined;
}
