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
  /** Resolves once every current target is being watched: a save after this is seen. */
  readonly ready: Promise<void>;
  /** Replace the set of watched targets (after a config reload); resolves when the new ones are watched. */
  update(targets: WatchTarget[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * Watches `targets`, one chokidar watcher each: chokidar says "ready" once per watcher, so a target
 * added by update() gets a ready event of its own, and tests and callers wait on it, not on a timer.
 */
export function watchTargets(
  targets: WatchTarget[],
  onChange: (batch: ChangeBatch) => void,
  opts: { debounceMs?: number } = {},
): Watcher {
  const debounceMs = opts.debounceMs ?? 100;
  const watchers = new Map<string, { target: WatchTarget; fsw: FSWatcher; ready: Promise<void> }>();
  let pending: ChangeBatch | undefined;
  let timer: NodeJS.Timeout | undefined;
  let ready: Promise<void> = Promise.resolve();

  const isIgnored = (p: string): boolean => {
    for (const { target: t } of watchers.values()) {
      if (p === t.path) return false;
      if (p.startsWith(t.path + "/")) return t.ignored ? t.ignored(p) : false;
    }
    return false;
  };

  const onEvent = (_event: string, path: string) => {
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
  };

  const start = (target: WatchTarget) => {
    const fsw = watch(target.path, {
      ignoreInitial: true,
      ignored: (p: string) => isIgnored(resolve(p)),
      // Editors save by writing a temp file and renaming it over the original: follow the path.
      atomic: true,
    });
    const isReady = new Promise<void>((r) => fsw.once("ready", () => r()));
    fsw.on("all", onEvent);
    watchers.set(target.path, { target, fsw, ready: isReady });
  };

  const watcher: Watcher = {
    get ready() {
      return ready;
    },
    update(next) {
      const nextMap = new Map(next.map((t) => [resolve(t.path), { ...t, path: resolve(t.path) }]));
      const closing: Promise<void>[] = [];
      for (const [path, w] of watchers) {
        if (!nextMap.has(path)) {
          watchers.delete(path);
          closing.push(w.fsw.close());
        } else w.target = nextMap.get(path)!;
      }
      for (const [path, t] of nextMap) if (!watchers.has(path)) start(t);
      ready = Promise.all([...closing, ...[...watchers.values()].map((w) => w.ready)]).then(() => undefined);
      return ready;
    },
    async close() {
      clearTimeout(timer);
      await Promise.all([...watchers.values()].map((w) => w.fsw.close()));
      watchers.clear();
    },
  };
  void watcher.update(targets);
  return watcher;
}
