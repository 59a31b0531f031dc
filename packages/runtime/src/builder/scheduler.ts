// Runs a dependency graph of tasks, at most `jobs` at a time, each as soon as its dependencies are
// done. The first failure stops new work, aborts the running tasks' signal and is rethrown once
// they have settled, so no step is left running behind the caller's back.
import { UserError } from "@mstage/core";

export interface Task<K> {
  key: K;
  deps: readonly K[];
  run(signal: AbortSignal): Promise<void>;
}

export async function runGraph<K>(tasks: readonly Task<K>[], jobs: number, signal?: AbortSignal): Promise<void> {
  if (!Number.isInteger(jobs) || jobs < 1) throw new UserError(`--jobs must be a whole number ≥ 1, got ${jobs}`);
  const byKey = new Map(tasks.map((t) => [t.key, t]));
  for (const t of tasks) {
    for (const d of t.deps) if (!byKey.has(d)) throw new Error(`task ${String(t.key)} depends on unknown task ${String(d)}`);
  }
  const done = new Set<K>();
  const started = new Set<K>();
  const running = new Set<Promise<void>>();
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(signal?.reason);
  signal?.addEventListener("abort", onOuterAbort, { once: true });
  let failure: { error: unknown } | undefined;

  try {
    while (done.size < tasks.length) {
      if (!failure && !abort.signal.aborted) {
        for (const t of tasks) {
          if (running.size >= jobs) break;
          if (started.has(t.key) || !t.deps.every((d) => done.has(d))) continue;
          started.add(t.key);
          const p: Promise<void> = t
            .run(abort.signal)
            .then(() => void done.add(t.key))
            .catch((error: unknown) => {
              if (!failure) failure = { error };
              abort.abort(error);
            })
            .finally(() => running.delete(p));
          running.add(p);
        }
      }
      if (running.size === 0) {
        if (failure) throw failure.error;
        if (abort.signal.aborted) throw abort.signal.reason ?? new UserError("interrupted");
        throw new Error("dependency cycle among build tasks");
      }
      await Promise.race(running);
    }
  } finally {
    signal?.removeEventListener("abort", onOuterAbort);
  }
}
