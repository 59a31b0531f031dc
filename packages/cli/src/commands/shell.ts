// `mstage shell <stage> [-- cmd…]`: builds the stage if needed, then opens a throw-away sandbox on
// its result, interactive when stdin is a terminal. Whatever the session changes is discarded.
import { availableParallelism } from "node:os";
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";
import { createProgress, resolveProgressMode } from "../render/progress.ts";

export default async function shell(args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const [name, ...rest] = args;
  if (!name) throw new UserError("name the stage to open: mstage shell <stage> [-- cmd…]");
  const afterDash = Array.isArray(opts["--"]) ? (opts["--"] as unknown[]).map(String) : [];
  const argv = afterDash.length ? afterDash : rest;

  const runtime = await import("@mstage/runtime");
  const reexec = runtime.reexecInUserNamespace(undefined, { onNote: (m) => process.stderr.write(`note: ${m}\n`) });
  if (reexec) await reexec;

  const { runUp } = await import("../app/up-run.ts");
  // Held from before the build until the session ends, as `up` holds it for a build: the session's
  // lower dirs are the store's extracted layers, which a concurrent `mstage gc` must not remove.
  const store = await runtime.Store.open(g.store);
  const storeLock = await store.lock("shared", { onWait: (m) => process.stderr.write(`${m}\n`) });
  try {
    const progress = createProgress(resolveProgressMode(opts.progress, g.quiet, process.stderr));
    let summary;
    try {
      summary = await runUp({
        file: g.file,
        store: g.store,
        targets: [name],
        outputs: [],
        noOutputs: true,
        jobs: availableParallelism(),
        verbose: g.verbose,
        onEvent: (e) => progress.onEvent(e),
      });
    } finally {
      progress.stop();
    }
    const built = [...summary.stages.values()].find((b) => b.stage.name === name || b.stage.definition?.name === name);
    if (!built) throw new UserError(`stage "${name}" was not built`);
    // stdio is inherited, terminal or not: `echo cmd | mstage shell app` works like `sh` does.
    return await runtime.openShell(store, built, { argv, tty: true });
  } finally {
    storeLock.release();
  }
}
