// `mstage up`: plan, build what changed, write the outputs. Building runs inside mstage's user
// namespace (re-executing itself there first), where layers owned by mapped ids can be read and
// written. A no-op `up` is decided before that, with core alone: no namespace, no runtime loaded.
import { constants } from "node:os";
import { UserError, type LocalDigest } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";
import { createProgress, resolveProgressMode } from "../render/progress.ts";
import { renderSummary } from "../render/summary.ts";
import type { JsonEvent } from "../render/events-json.ts";
import { decodePlanHandOff, encodePlanHandOff } from "../app/plan-handoff.ts";
import { parseUpOptions } from "./up-options.ts";

export default async function up(args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const started = Date.now();
  const flags = parseUpOptions(opts);
  const { outputs, noCache, registry, attest } = flags;
  // --json: the event stream on stdout (the same events as `watch --json`) instead of progress and summary.
  const json = opts.json === true;
  const mode = json ? "quiet" : resolveProgressMode(opts.progress, g.quiet, process.stderr);
  if (opts.watch) return (await import("./watch.ts")).default(args, opts, g);
  const color = g.color && process.stdout.isTTY === true;

  // The no-op path prints a summary only; a JSON reader gets the full stream of the normal path.
  // When it is not a no-op, the local sources it hashed go to the build in the user namespace.
  const localDigests = new Map<string, LocalDigest>();
  // The modules each side needs are loaded there (the no-op check's planning here, the JSON events
  // inside): an `up` that re-executes starts the process inside ~10 ms sooner without the rest.
  if (!json && !process.env.MSTAGE_USERNS && !noCache && !flags.refresh && !registry.push && !registry.cacheFrom?.length && !registry.cacheTo?.length) {
    const { checkNoop } = await import("../app/up-noop.ts");
    const noop = await checkNoop({ file: g.file, store: g.store, targets: args, outputs, verbose: g.verbose, attestations: attest.sbom ? attest.format : false, platforms: flags.platforms, compression: flags.compression, localDigests });
    if (noop) {
      process.stdout.write(renderSummary({ ...noop, ms: Date.now() - started }, { quiet: g.quiet, color }));
      return 0;
    }
  }

  // Only the re-exec is loaded out here: the rest of the runtime is loaded by the process inside.
  const userns = await import("@mstage/runtime/userns");
  const reexec = userns.reexecInUserNamespace(undefined, { onNote: (m) => process.stderr.write(`note: ${m}\n`), handOff: encodePlanHandOff(g.file, localDigests) });
  if (reexec) await reexec;
  const handed = decodePlanHandOff(userns.takeHandOff(), g.file);

  const [{ runUp }, { jsonEventLine, planEvent }] = await Promise.all([import("../app/up-run.ts"), import("../render/events-json.ts")]);
  const emit = (e: JsonEvent) => process.stdout.write(jsonEventLine(e));
  const progress = createProgress(mode);
  const controller = new AbortController();
  // `on`, not `once`: Ctrl-C reaches every process of the terminal's group, and a second delivery
  // (or a second Ctrl-C while steps stop) must not kill mstage before it has cleaned up.
  let interruptedBy: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    interruptedBy ??= sig;
    controller.abort(new UserError("interrupted"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const summary = await runUp({
      ...flags,
      file: g.file,
      store: g.store,
      targets: args,
      verbose: g.verbose,
      localDigests: handed,
      signal: controller.signal,
      onEvent: json ? emit : (e) => progress.onEvent(e),
      onPlan: json ? (plan) => emit(planEvent(plan)) : undefined,
    });
    progress.stop();
    const ms = Date.now() - started;
    if (json) emit({ type: "result", built: summary.built, cached: summary.cached, configOnly: summary.configOnly, ms });
    else process.stdout.write(renderSummary({ ...summary, ms }, { quiet: g.quiet, color }));
    return 0;
  } catch (e) {
    if (json) emit(interruptedBy ? { type: "cancelled", reason: "interrupted" } : { type: "build-error", message: e instanceof Error ? e.message : String(e) });
    if (!interruptedBy) throw e;
    // The user stopped it: not a failure of any stage. Exit as shells report a death by that signal.
    progress.stop();
    process.stderr.write(`interrupted: the build stopped; stages that finished are kept in the store\n`);
    return 128 + constants.signals[interruptedBy];
  } finally {
    progress.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
