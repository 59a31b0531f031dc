// Runs a dependency graph of tasks, at most `jobs` at a time, each as soon as its dependencies are
// done (the earliest in the caller's order first). The first failure stops new work, aborts the
// running tasks' signal and is rethrown once they have settled, so no step is left running behind
// the caller's back. Bookkeeping is O(tasks + edges): a finished task only visits its dependents,
// so 2000 stages cost no 2000² scan.
import { UserError } from "@mstage/core";

export interface Task<K> {
  key: K;
  deps: readonly K[];
  run(signal: AbortSignal): Promise<void>;
}

export async function runGraph<K>(tasks: readonly Task<K>[], jobs: number, signal?: AbortSignal): Promise<void> {
  if (!Number.isInteger(jobs) || jobs < 1) throw new UserError(`--jobs must be a whole number ≥ 1, got ${jobs}`);
  const index = new Map(tasks.map((t, i) => [t.key, i]));
  // How many distinct dependencies each task still waits for, and who waits for each task.
  const waitsFor = tasks.map(() => 0);
  const dependents: number[][] = tasks.map(() => []);
  tasks.forEach((t, i) => {
    for (const d of new Set(t.deps)) {
      const j = index.get(d);
      if (j === undefined) throw new Error(`task ${String(t.key)} depends on unknown task ${String(d)}`);
      waitsFor[i]!++;
      dependents[j]!.push(i);
    }
  });
  const ready = new ReadyQueue();
  waitsFor.forEach((n, i) => n === 0 && ready.push(i));
  let done = 0;
  const running = new Set<Promise<void>>();
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(signal?.reason);
  signal?.addEventListener("abort", onOuterAbort, { once: true });
  let failure: { error: unknown } | undefined;

  const finished = (i: number) => {
    done++;
    for (const j of dependents[i]!) if (--waitsFor[j]! === 0) ready.push(j);
  };

  try {
    while (done < tasks.length) {
      while (!failure && !abort.signal.aborted && running.size < jobs && ready.size > 0) {
        const i = ready.pop();
        const p: Promise<void> = tasks[i]!
          .run(abort.signal)
          .then(() => finished(i))
          .catch((error: unknown) => {
            if (!failure) failure = { error };
            abort.abort(error);
          })
          .finally(() => running.delete(p));
        running.add(p);
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

/** Task indexes ready to start, smallest first (a binary min-heap). */
class ReadyQueue {
  private readonly heap: number[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(v: number): void {
    const h = this.heap;
    let i = h.push(v) - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (h[up]! <= v) break;
      h[i] = h[up]!;
      i = up;
    }
    h[i] = v;
  }

  pop(): number {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const c = l + 1 < h.length && h[l + 1]! < h[l]! ? l + 1 : l;
        if (h[c]! >= last) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
