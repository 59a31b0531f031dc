// Watches the files a build depends on (config files and local() sources) and reports bursts of
// saves as one change, ~100 ms after the last event of the burst.
import { watch, type FSWatcher } from "chokidar";
import { resolve } from "node:path";

export interface WatchTarget {
  /** A file or directory to watch. */
  path: string;
  /** For directories: true for paths (absolute) that do not count (exclude, .mstageignore). */
  ignored?: (absPath: string) => boolean;
}

export interface ChangeBatch {
  /** Absolute paths that changed, in the order first seen. */
  paths: string[];
  /** When the first event of the burst arrived (performance.now()), for save-to-output timing. */
  firstEventAt: number;
}

export interface Watcher {
  /** Replace the set of watched targets (after a config reload). */
  update(targets: WatchTarget[]): void;
  close(): Promise<void>;
}

export function watchTargets(
  targets: WatchTarget[],
  onChange: (batch: ChangeBatch) => void,
  opts: { debounceMs?: number } = {},
): Watcher {
  const debounceMs = opts.debounceMs ?? 100;
  let current = new Map<string, WatchTarget>();
  let pending: ChangeBatch | undefined;
  let timer: NodeJS.Timeout | undefined;

  const isIgnored = (p: string): boolean => {
    for (const t of current.values()) {
      if (p === t.path) return false;
      if (p.startsWith(t.path + "/")) return t.ignored ? t.ignored(p) : false;
    }
    return false;
  };

  const fsw: FSWatcher = watch([], {
    ignoreInitial: true,
    ignored: (p: string) => isIgnored(resolve(p)),
    // Editors save by writing a temp file and renaming it over the original: follow the path.
    atomic: true,
  });

  fsw.on("all", (_event, path) => {
    const abs = resolve(path);
    if (isIgnored(abs)) return;
    if (!pending) pending = { paths: [], firstEventAt: performance.now() };
    if (!pending.paths.includes(abs)) pending.paths.push(abs);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const batch = pending!;
      pending = undefined;
      onChange(batch);
    }, debounceMs);
  });

  const watcher: Watcher = {
    update(next) {
      const nextMap = new Map(next.map((t) => [resolve(t.path), { ...t, path: resolve(t.path) }]));
      const removed = [...current.keys()].filter((p) => !nextMap.has(p));
      const added = [...nextMap.keys()].filter((p) => !current.has(p));
      current = nextMap;
      if (removed.length) fsw.unwatch(removed);
      if (added.length) fsw.add(added);
    },
    async close() {
      clearTimeout(timer);
      await fsw.close();
    },
  };
  watcher.update(targets);
  return watcher;
}
