// `mstage up --watch`: an initial build, then a rebuild of what each save changed. A save during a
// build cancels it (the sandbox kills the step's whole process tree and unmounts) and starts over
// with the newest files. A config that fails to load or a step that fails is reported, and the
// last good graph keeps being watched until the next good save.
import { IgnoreRules, UserError, globBase, localPath, projectIgnore, type LocalSource } from "@mstage/core";
import type { BuildEvent } from "@mstage/runtime";
import { loadConfig, type LoadedConfig } from "../config/load.ts";
import { runUp, type UpOptions, type UpSummary } from "../app/up-run.ts";
import { planEvent, type PlanEvent } from "../render/events-json.ts";
import { watchTargets, type ChangeBatch, type WatchTarget } from "./watcher.ts";

/** One line of the machine-readable stream (`--json`), or a human line otherwise. */
export type WatchEvent =
  /** The watcher is ready: every save from now on is seen. */
  | { type: "watching"; files: number }
  | { type: "change"; paths: string[] }
  | { type: "config-error"; message: string }
  | PlanEvent
  | { type: "cancelled"; reason: string }
  | { type: "build-error"; message: string }
  | { type: "result"; built: number; cached: number; ms: number; saveToOutputMs?: number }
  | BuildEvent;

export interface WatchOptions extends Omit<UpOptions, "signal" | "onEvent" | "config" | "onPlan"> {
  /** Receives every event; the CLI renders them (JSON lines or human text). */
  onEvent(e: WatchEvent): void;
  /** Renders an error the way the CLI's top-level catch would. */
  describeError(e: unknown): string;
  /** Resolves when the user asks to stop (SIGINT, SIGTERM, `q`). */
  stopped: Promise<void>;
}

export async function runWatch(o: WatchOptions): Promise<number> {
  let config: LoadedConfig | undefined;
  try {
    config = await loadConfig(o.file, { verbose: o.verbose });
  } catch (e) {
    // Without a first good config there is nothing to watch but the file itself.
    o.onEvent({ type: "config-error", message: o.describeError(e) });
  }

  let build: { controller: AbortController; done: Promise<void> } | undefined;
  let queued: ChangeBatch | undefined;
  let stopping = false;

  const initialTargets = config ? targetsOf(config) : [{ path: o.file }];
  const watcher = watchTargets(initialTargets, (batch) => {
    o.onEvent({ type: "change", paths: batch.paths });
    queued = queued ? { paths: [...new Set([...queued.paths, ...batch.paths])], firstEventAt: queued.firstEventAt } : batch;
    if (build) build.controller.abort(new UserError("cancelled: files changed"));
    else void next();
  });

  /** Starts the build for the queued change (or the initial one), reloading the config if needed. */
  const next = async (initial = false): Promise<void> => {
    if (stopping) return;
    const batch = queued;
    queued = undefined;
    if (batch && (!config || batch.paths.some((p) => config!.dependencies.includes(p) || p === o.file))) {
      try {
        config = await loadConfig(o.file, { verbose: o.verbose });
        void watcher.update(targetsOf(config));
      } catch (e) {
        o.onEvent({ type: "config-error", message: o.describeError(e) });
        return;
      }
    }
    if (!config) return;
    if (!initial && !batch) return;
    const controller = new AbortController();
    const started = batch?.firstEventAt;
    const done = (async () => {
      try {
        const s: UpSummary = await runUp({
          ...o,
          config,
          signal: controller.signal,
          onEvent: (e) => o.onEvent(e),
          onPlan: (plan) => o.onEvent(planEvent(plan)),
        });
        o.onEvent({
          type: "result",
          built: s.built,
          cached: s.cached,
          ms: s.ms,
          saveToOutputMs: started === undefined ? undefined : Math.round(performance.now() - started),
        });
      } catch (e) {
        if (controller.signal.aborted) o.onEvent({ type: "cancelled", reason: String((controller.signal.reason as Error)?.message ?? "cancelled") });
        else o.onEvent({ type: "build-error", message: o.describeError(e) });
      }
    })();
    build = { controller, done };
    await done;
    build = undefined;
    if (queued) await next();
  };

  // "watching" means saves are seen from now on; the initial build does not wait for it.
  void watcher.ready.then(() => o.onEvent({ type: "watching", files: initialTargets.length }));
  void next(true);
  await o.stopped;
  stopping = true;
  build?.controller.abort(new UserError("interrupted"));
  await Promise.all([watcher.close(), build?.done]);
  return 0;
}

/** What a build of this config reads from the host: its own files, local() sources, read-only binds. */
export function targetsOf(config: LoadedConfig): WatchTarget[] {
  const dir = config.projectDir;
  const ignore = projectIgnore(dir);
  const out = new Map<string, WatchTarget>();
  for (const f of config.dependencies) out.set(f, { path: f });
  const generated = [`${dir}/oci`, `${dir}/.mstage`];
  const addLocal = (src: LocalSource) => {
    const root = localPath(globBase(src.path), dir);
    const exclude = new IgnoreRules(src.exclude);
    out.set(root, {
      path: root,
      ignored: (abs) => {
        if (generated.some((g) => abs === g || abs.startsWith(g + "/"))) return true;
        const rel = abs.slice(root.length + 1);
        const fromProject = abs.startsWith(dir + "/") ? abs.slice(dir.length + 1) : undefined;
        return exclude.ignores(rel, false) || (fromProject !== undefined && ignore.ignores(fromProject, false));
      },
    });
  };
  for (const s of config.stages) {
    for (const [, src] of s.spec.copy) {
      if (src.kind === "local") addLocal(src);
      if (src.kind === "archive" && src.source.kind === "local") addLocal(src.source);
    }
    if (s.spec.from.kind === "tarball" && s.spec.from.source.kind === "local") addLocal(s.spec.from.source);
    for (const b of s.spec.binds) if (b.readonly) out.set(localPath(b.host, dir), { path: localPath(b.host, dir) });
  }
  return [...out.values()];
}
