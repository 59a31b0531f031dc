// The builder: executes a plan. Stages run in dependency order, independent ones in parallel (up to
// `jobs`); a cached or config-only stage is served from its stored result without touching its
// layers. A stage that builds: its base's layers become overlay lower dirs, `copy` and `run` write
// the upper dir, and the upper dir is committed as the stage's one layer and then kept as that
// layer's extracted dir.
import { mkdir, readFile, rm, lstat, readdir } from "node:fs/promises";
import { createReadStream } from "node:fs";
import { join, resolve } from "node:path";
import { StageError, StepError, UserError, formatPlatform, type PlanEntry, type Stage, type StagePathSource, type TarballBase } from "@mstage/core";
import { createHash } from "node:crypto";
import { addLayer, applyStageConfig, createdTimestamp, emptyImageConfig, runEnv, squashLayers, stageHistoryEntry } from "../oci/config.ts";
import type { ImageConfig } from "../oci/types.ts";
import type { Digest } from "../oci/digest.ts";
import { applyCopy } from "./copy.ts";
import { createWorkdir } from "./workdir.ts";
import { LineSplitter, type BuildEventHandler, type StageOutcome } from "./events.ts";
import { hostPathInRoot, resolveInRoot } from "../sandbox/paths.ts";
import { runGraph } from "./scheduler.ts";
import { CorruptLayerError, applyLayer, commitAndAdopt, makeLayerDurable, commitLayerToStore, ensureLayerExtracted, holdScratch, importTarLayer, runStep, withRootfs, type LayerRef, type StageResult, type Store } from "./deps.ts";
import { checkBasePlatform, memoised, stagePlatform, tarballBase, tarballName, type BaseProvider, type PreparedBase } from "./bases.ts";
import { foreignRunProblem } from "../sandbox/binfmt.ts";
import { NO_SPACE_ADVICE, noSpaceCause } from "../store/full.ts";

export interface BuildOptions {
  store: Store;
  projectDir: string;
  /** Plan entries in graph order (core's planStages); "unused" entries are ignored. */
  entries: readonly PlanEntry[];
  /** The stages each stage reads from (core's graph.deps). */
  deps(stage: Stage): Stage[];
  bases: BaseProvider;
  /** Stages built at once; default 1. */
  jobs?: number;
  sourceDateEpoch?: number;
  onEvent?: BuildEventHandler;
  signal?: AbortSignal;
  /** Told each stage as soon as it is ready (also when a later stage fails), e.g. to record state. */
  onStage?: (b: BuiltStage) => void;
}

/** A stage after this run: its stored result and its final image config (config-only fields applied). */
export interface BuiltStage {
  stage: Stage;
  entry: PlanEntry;
  outcome: StageOutcome;
  result: StageResult;
  /** The image after this stage, as outputs write it and later stages inherit it. */
  config: ImageConfig;
  /** Set when the chain starts from a registry or OCI image (base.* annotations). */
  base?: { name: string; digest: Digest };
}

const TAIL_LINES = 20;

export async function buildPlan(o: BuildOptions): Promise<Map<Stage, BuiltStage>> {
  const built = new Map<Stage, BuiltStage>();
  const emit: BuildEventHandler = o.onEvent ?? (() => {});
  const sde = o.sourceDateEpoch ?? 0;
  const entries = o.entries.filter((e) => e.status !== "unused");
  const inPlan = new Set(entries.map((e) => e.stage));
  /** tarball() files imported in this run, by path. */
  const tarballs = new Map<string, Promise<LayerRef>>();
  const waiting = new WaitingStages(entries, (s) => o.deps(s).filter((d) => inPlan.has(d)), emit);
  /** Built stages whose results are being made durable and stored (see record()). */
  const records = new Set<Promise<void>>();
  /** Per stage built in this run: settled once its own layer and its base stages' layers are durable. */
  const durable = new Map<Stage, Promise<void>>();
  // Stops the build when the user's signal does, or when a built stage cannot be recorded.
  const stop = new AbortController();
  const onAbort = () => stop.abort(o.signal?.reason);
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener("abort", onAbort, { once: true });

  const tasks = entries.map((entry) => ({
    key: entry.stage,
    deps: o.deps(entry.stage).filter((d) => inPlan.has(d)),
    run: async (signal: AbortSignal) => {
      const started = Date.now();
      const stage = entry.stage;
      try {
        const stored = entry.status === "cached" || entry.status === "config" ? await o.store.getResult(entry.layerKey) : undefined;
        if (stored) {
          const b = await finish(entry, stored, entry.status === "config" ? "config" : "cached");
          if (b.outcome === "cached") emit({ type: "stage-cached", stage: stage.name });
          else {
            emit({ type: "stage-start", stage: stage.name, status: "config" });
            emit({ type: "stage-done", stage: stage.name, outcome: "config", ms: Date.now() - started, layers: stored.layers.length });
          }
          waiting.done(stage);
          return;
        }
        emit({ type: "stage-start", stage: stage.name, status: entry.status === "new" ? "new" : "rebuild" });
        const result = await buildStage(entry, signal);
        // Its dependents may build on its layer at once; its result is recorded once the layer is
        // durable, outside the job slot (a slot waiting on fsyncs leaves a core idle).
        const b = await finish(entry, result, "built", false);
        const own = ownLayer(result);
        const from = stage.spec.from;
        // Its result names its base's layers too: those must be durable before it is recorded.
        const layersDurable = Promise.all([own ? makeLayerDurable(o.store, own.diffId) : undefined, from.kind === "stage" ? durable.get(from.stage) : undefined]).then(() => undefined);
        layersDurable.catch(() => undefined);
        durable.set(stage, layersDurable);
        emit({ type: "stage-done", stage: stage.name, outcome: "built", ms: Date.now() - started, layers: b.result.layers.length });
        waiting.done(stage);
        const p = record(b, result, layersDurable, started);
        p.catch(() => undefined); // settled (and rethrown) after the graph
        records.add(p);
      } catch (e) {
        failed(stage, e, started);
      }
    },
  }));

  waiting.announce();
  let failure: { error: unknown } | undefined;
  // The rootfs scratch tmpfs (overlay.ts), for this build's stages.
  const releaseScratch = holdScratch(o.store.layout.tmpDir);
  try {
    await runGraph(tasks, o.jobs ?? 1, stop.signal);
  } catch (error) {
    failure = { error };
  } finally {
    await releaseScratch();
  }
  o.signal?.removeEventListener("abort", onAbort);
  // Every stage that was built is recorded (or has failed) before the build returns or throws.
  const settled = await Promise.allSettled(records);
  if (failure) throw failure.error;
  const bad = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (bad) throw bad.reason;
  return built;

  function failed(stage: Stage, e: unknown, started: number): never {
    const error = storeFullError(e, o.store, stage) ?? e;
    emit({ type: "stage-failed", stage: stage.name, error, ms: Date.now() - started, interrupted: o.signal?.aborted === true });
    throw error;
  }

  /** A built stage's result, stored once its layer is durable: never before (a crash must not leave a result naming a layer it lost). */
  async function record(b: BuiltStage, result: StageResult, layersDurable: Promise<void>, started: number): Promise<void> {
    const stage = b.stage;
    try {
      await layersDurable;
      await o.store.putResult(b.entry.layerKey, result);
      o.onStage?.(b);
    } catch (e) {
      // The stages still running stop too: what they would build could not be recorded either.
      try {
        failed(stage, e, started);
      } catch (error) {
        stop.abort(error);
        throw error;
      }
    }
  }

  /**
   * The base's final config, layers and base annotation: another stage's, or the base provider's.
   * `known` is the base's part of the stage's stored result (a debian() base is then not made).
   */
  async function baseOf(stage: Stage, known?: readonly LayerRef[], blobs?: readonly Digest[]): Promise<PreparedBase> {
    const from = stage.spec.from;
    if (from.kind === "stage") {
      const up = built.get(from.stage);
      if (!up) throw new Error(`stage "${stage.name}": base stage "${from.stage.name}" was not built first`);
      return checkBasePlatform({ layers: up.result.layers, config: up.config, base: up.base, blobs: up.result.blobs }, stage, `stage "${from.stage.name}"`);
    }
    return o.bases.prepare(from, stage, known, blobs);
  }

  /**
   * A stage as this run uses it, from its stored result: its own layer on top of its base's current
   * chain, squashed when asked (squash is image-level, so it is cached under a key of its own), and
   * its final config. Cheap for cached stages: no layer is read unless a squash must be made.
   */
  async function finish(entry: PlanEntry, stored: StageResult, outcome: StageOutcome, tell = true): Promise<BuiltStage> {
    const stage = entry.stage;
    const own = ownLayer(stored);
    const base = await baseOf(stage, own ? stored.layers.slice(0, -1) : stored.layers, stored.blobs);
    // A result stored before results listed their base's blobs gets them now, so gc keeps them.
    const missing = (base.blobs ?? []).filter((d) => !stored.blobs?.includes(d));
    if (missing.length) {
      stored = { ...stored, blobs: [...(stored.blobs ?? []), ...missing] };
      await o.store.putResult(entry.layerKey, stored);
    }
    let layers = own ? [...base.layers, own] : [...base.layers];
    if (stage.spec.squash && layers.length > 1) layers = [await squash(stage, layers)];
    const generated = stage.spec.labelsFrom ? await labelsOf(stage, stage.spec.labelsFrom) : undefined;
    const config = finalConfig(stage, base.config, own, stage.spec.squash ? layers[0] : undefined, sde, generated);
    const result: StageResult = { ...stored, layers, config, history: config.history ?? [], stage: stage.name, project: o.projectDir };
    const b: BuiltStage = { stage, entry, outcome, result, config, base: base.base };
    built.set(stage, b);
    if (tell) o.onStage?.(b);
    return b;
  }

  /** `labelsFrom`: each regular file of the directory in the other stage's result is a label. */
  async function labelsOf(stage: Stage, from: StagePathSource): Promise<Record<string, string>> {
    const what = `${from.stage.name}.path(${JSON.stringify(from.path)})`;
    return withStageRoot(from.stage, async (root) => {
      const dir = hostPathInRoot(root, from.path, { followLast: true });
      const st = await lstat(dir).catch(() => undefined);
      if (!st?.isDirectory()) throw new StageError(stage.name, `${what} is not a directory in stage "${from.stage.name}"'s result`, "labelsFrom", stage.definedAt);
      const labels: Record<string, string> = {};
      for (const name of (await readdir(dir)).sort()) {
        const file = join(dir, name);
        if ((await lstat(file)).isFile()) labels[name] = await readFile(file, "utf8");
      }
      return labels;
    });
  }

  async function squash(stage: Stage, layers: LayerRef[]): Promise<LayerRef> {
    const key = createHash("sha256").update(`squash\n${layers.map((l) => l.diffId).join("\n")}`).digest("hex");
    const hit = await o.store.getResult(key);
    if (hit?.layers.length === 1) return hit.layers[0]!;
    emit({ type: "stage-phase", stage: stage.name, phase: "squash" });
    const lowers = await lowerDirs(layers);
    const layer = await withReadOnlyRoot(lowers, (merged) => commitLayerToStore(o.store, merged, { sourceDateEpoch: sde }));
    const config = emptyImageConfig(stagePlatform(stage));
    config.rootfs.diff_ids = [layer.diffId];
    await o.store.putResult(key, { key, layers: [layer], config, history: [], created: createdTimestamp(sde), stage: `${stage.name} (squashed)` });
    return layer;
  }

  async function lowerDirs(layers: readonly LayerRef[]): Promise<string[]> {
    const dirs: string[] = [];
    for (const l of layers) {
      // A pulled layer may be stored only as its gzip or zstd blob; applyLayer detects which.
      const open = () => o.store.openBlob(o.store.layerBlob(l.diffId) ?? l.diffId);
      dirs.push(await ensureLayerExtracted(o.store, l.diffId, open, { onNote: (message) => emit({ type: "note", message }) }));
    }
    return dirs.reverse();
  }

  /**
   * A file copied out of another stage usually sits in that stage's own (top) layer. When every
   * directory on the way is a real directory there and the file a regular file, the top layer
   * hides whatever the lower layers have at that path, so the file can be read without a mount.
   */
  async function topLayerFile(stage: Stage, path: string): Promise<string | undefined> {
    const b = built.get(stage);
    const top = b?.result.layers[b.result.layers.length - 1];
    if (!top || !o.store.hasLayerDir(top.diffId)) return undefined;
    const parts = path.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.length === 0 || parts.includes("..")) return undefined;
    let cur = o.store.layerDir(top.diffId);
    for (const [i, part] of parts.entries()) {
      cur = join(cur, part);
      const st = await lstat(cur).catch(() => undefined);
      if (!st) return undefined;
      const last = i === parts.length - 1;
      if (last ? !st.isFile() : !st.isDirectory()) return undefined;
    }
    return cur;
  }

  async function withStageRoot<T>(stage: Stage, fn: (root: string) => Promise<T>): Promise<T> {
    const b = built.get(stage);
    if (!b) throw new Error(`stage "${stage.name}" is read before it was built`);
    return withReadOnlyRoot(await lowerDirs(b.result.layers), fn);
  }

  /** A read-only mount whose mountpoint lives in the store's tmp/, so a killed build leaves nothing in $TMPDIR (gc clears it). */
  async function withReadOnlyRoot<T>(lowers: string[], fn: (root: string) => Promise<T>): Promise<T> {
    const tmp = o.store.tmpDir("rootfs");
    try {
      return await withRootfs({ lowers, tmpDir: tmp, scratchIn: o.store.layout.tmpDir }, fn);
    } finally {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  async function buildStage(entry: PlanEntry, signal: AbortSignal): Promise<StageResult> {
    const stage = entry.stage;
    const spec = stage.spec;
    emit({ type: "stage-phase", stage: stage.name, phase: "base" });
    const from = spec.from;
    const base = from.kind === "tarball" ? await importTarball(stage, from, entry) : await baseOf(stage);
    const runConfig = applyStageConfig(base.config, spec, "run", { stage: stage.name });
    const lowers = await lowerDirs(base.layers).catch((e) => {
      // A base layer (pulled, or from an oci() layout) that is no tar: the stage's base is the source.
      if (e instanceof CorruptLayerError) throw new StageError(stage.name, `base ${base.base?.name ?? ""}: ${e.message}`, "from", stage.definedAt);
      throw e;
    });

    const work = o.store.tmpDir(`stage-${stage.name.replace(/[^a-zA-Z0-9_.-]/g, "_")}`);
    const upper = join(work, "upper");
    const ovlWork = join(work, "work");
    await mkdir(upper, { recursive: true });
    await mkdir(ovlWork, { recursive: true });
    try {
      const changes = spec.copy.length > 0 || spec.run.length > 0 || spec.workdir !== undefined;
      const copyInto = async (root: string) => {
        createWorkdir(root, stage, base.config.config?.User || undefined);
        if (spec.copy.length) emit({ type: "stage-phase", stage: stage.name, phase: "copy" });
        const onNote = (message: string) => emit({ type: "note", stage: stage.name, message });
        for (const [i, [dest, source]] of spec.copy.entries()) {
          signal.throwIfAborted();
          const planned = entry.inputs?.copy[i]?.source;
          await applyCopy(root, dest, source, { stage, projectDir: o.projectDir, withStageRoot, topLayerFile, onNote, planned, signal, tmpDir: (hint) => o.store.tmpDir(hint) });
        }
      };
      if (changes && lowers.length === 0 && spec.run.length === 0) {
        // Nothing below and nothing to run (scratch plus copies): the upper
        // dir is the whole filesystem, so copy straight into it without an overlay mount.
        await copyInto(upper);
      } else if (changes) {
        // Bind and cache targets are mount points: the sandbox keeps them out of the upper dir.
        const mountpoints = [...spec.binds.map((b) => b.target), ...spec.stageBinds.map((b) => b.target), ...spec.tmpfs, ...Object.keys(spec.caches)];
        await withRootfs({ lowers, upper, work: ovlWork, mountpoints, tmpDir: work, scratchIn: o.store.layout.tmpDir }, async (merged) => {
          await copyInto(merged);
          if (spec.run.length) await withStageRoots(spec.stageBinds.map((b) => b.from.stage), (roots) => runScripts(stage, runConfig, merged, roots, signal));
        });
      }
      emit({ type: "stage-phase", stage: stage.name, phase: "commit" });
      let own: LayerRef | undefined;
      // The upper dir then becomes the layer's extracted form: a later stage on this one mounts it
      // instead of extracting the tar just written.
      // Made durable outside the job slot (makeLayerDurable), before its result is stored.
      if (await hasEntries(upper)) {
        own = await commitAndAdopt(o.store, upper, { sourceDateEpoch: sde, syncLater: true }).catch((e: unknown) => {
          // What the stage left that no layer holds (a name that is not UTF-8) is the stage's error.
          if (e instanceof UserError && !(e instanceof StageError)) throw new StageError(stage.name, e.message, spec.run.length ? "run" : "copy", stage.definedAt, { cause: e });
          throw e;
        });
      }
      // Stored unsquashed, with the stage's own config: finish() derives the rest for this run.
      const config = finalConfig(stage, base.config, own, undefined, sde);
      return {
        key: entry.layerKey,
        layers: own ? [...base.layers, own] : [...base.layers],
        config,
        history: config.history ?? [],
        created: createdTimestamp(sde),
        stage: stage.name,
        project: o.projectDir,
        // The base image's own blobs: a cached stage's outputs and `up --offline` need them after gc.
        blobs: base.blobs,
      };
    } finally {
      await rm(work, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /**
   * A tarball() base as a layer of its own, on which the stage's changes are another; stages on
   * the same tar share it. A local() tar goes in as it is, like a pulled layer: its bytes are the
   * input the key names, so its blob and extracted dir are made in one read. A tar another stage
   * wrote is extracted and committed once, so its layer is as reproducible as any stage's (the
   * tool that wrote it may have stamped build times on its files).
   */
  async function importTarball(stage: Stage, base: TarballBase, entry: PlanEntry): Promise<PreparedBase> {
    // The "tarball" phase is the tar being read: none when the store has its layer already.
    const reading = () => emit({ type: "stage-phase", stage: stage.name, phase: "tarball" });
    const source = base.source;
    const onNote = (message: string) => emit({ type: "note", stage: stage.name, message });
    const what = (path: string) => `${tarballName(base)} (${path})`;
    const asStageError = (e: unknown) => {
      if (e instanceof UserError && !(e instanceof StageError)) throw new StageError(stage.name, e.message, "from", stage.definedAt);
      throw e;
    };
    const file = source.kind === "local" ? resolve(o.projectDir, source.path) : "";
    const planned = entry.inputs?.base.kind === "tarball" && entry.inputs.base.source.kind === "local" ? entry.inputs.base.source.digest : undefined;
    const importLocal = async () => {
      const known = planned && (await o.bases.importedTarball(planned));
      if (known) return known;
      reading();
      const layer = await importTarLayer(o.store, file, { what: what(file), onNote });
      if (planned) o.bases.rememberTarball(planned, layer);
      return layer;
    };
    const layer =
      source.kind === "local"
        ? await memoised(tarballs, file, importLocal).catch(asStageError)
        : await withStageRoot(source.stage, async (root) => {
            reading();
            const path = hostPathInRoot(root, source.path, { followLast: true });
            const st = await lstat(path).catch(() => undefined);
            if (!st?.isFile()) {
              throw new StageError(stage.name, `${source.stage.name}.path("${source.path}") is not a file in stage "${source.stage.name}"'s result`, "from", stage.definedAt);
            }
            const dir = o.store.tmpDir("tarball");
            try {
              await applyLayer(createReadStream(path), dir, { mode: "merge", what: what(path), onNote }).catch(asStageError);
              return await commitAndAdopt(o.store, dir, { sourceDateEpoch: sde });
            } finally {
              await rm(dir, { recursive: true, force: true }).catch(() => undefined);
            }
          });
    return tarballBase(base, layer, stagePlatform(stage), createdTimestamp(sde));
  }

  /** Runs `fn` with each stage's result mounted read-only (for binds from a stage's path). */
  async function withStageRoots<T>(stages: Stage[], fn: (roots: Map<Stage, string>) => Promise<T>, roots = new Map<Stage, string>()): Promise<T> {
    const next = stages.find((s) => !roots.has(s));
    if (!next) return fn(roots);
    return withStageRoot(next, (root) => withStageRoots(stages, fn, new Map(roots).set(next, root)));
  }

  async function runScripts(stage: Stage, config: ImageConfig, merged: string, roots: Map<Stage, string>, signal: AbortSignal): Promise<void> {
    const spec = stage.spec;
    const foreign = foreignRunProblem(stagePlatform(stage));
    if (foreign) throw new StageError(stage.name, `run: this stage is built for ${formatPlatform(stagePlatform(stage))}; ${foreign}`, "run", stage.definedAt);
    const shell = spec.shell;
    const shellPath = hostPathInRoot(merged, shell[0]!, { followLast: true });
    if (!(await lstat(shellPath).catch(() => undefined))) {
      throw new StageError(stage.name, `run needs ${shell[0]}, which this stage's base does not have${spec.from.kind === "scratch" ? " (scratch is empty: copy a shell in first, or build from another base)" : ""}`, "run", stage.definedAt);
    }
    const user = spec.runAs ?? config.config?.User ?? undefined;
    const workdir = config.config?.WorkingDir || undefined;
    const env = runEnv(config);

    const binds = spec.binds.map((b) => ({ target: b.target, host: resolve(o.projectDir, b.host), readonly: b.readonly }));
    for (const b of spec.stageBinds) {
      const r = resolveInRoot(roots.get(b.from.stage)!, b.from.path);
      if (r.missing.length) {
        throw new StageError(stage.name, `${b.from.stage.name}.path("${b.from.path}") does not exist in stage "${b.from.stage.name}"'s result`, `binds["${b.target}"]`, stage.definedAt);
      }
      binds.push({ target: b.target, host: r.existing, readonly: true });
    }
    const caches = await Promise.all(Object.entries(spec.caches).map(async ([target, id]) => ({ target, dir: await o.store.cacheDir(id) })));
    const secrets = await Promise.all(Object.entries(spec.secrets).map(async ([id, s]) => ({ id, data: await readSecret(stage, id, s) })));

    for (const script of spec.run) {
      emit({ type: "stage-phase", stage: stage.name, phase: "run" });
      const tail: string[] = [];
      const split = (stream: "stdout" | "stderr") =>
        new LineSplitter((line) => {
          tail.push(line);
          if (tail.length > TAIL_LINES) tail.shift();
          emit({ type: "log", stage: stage.name, line, stream });
        });
      const out = { stdout: split("stdout"), stderr: split("stderr") };
      const { exitCode } = await runStep({
        rootfs: merged,
        argv: [...shell, script],
        env,
        workdir,
        user,
        network: spec.network,
        binds,
        caches,
        tmpfs: [...spec.tmpfs],
        secrets,
        signal,
        onOutput: (chunk: string, stream: "stdout" | "stderr") => out[stream].push(chunk),
      });
      out.stdout.flush();
      out.stderr.flush();
      signal.throwIfAborted();
      if (exitCode !== 0) throw new StepError(stage.name, script, exitCode, tail);
    }
  }

  async function readSecret(stage: Stage, id: string, s: import("@mstage/core").SecretSource): Promise<Uint8Array> {
    if ("env" in s) {
      const v = process.env[s.env];
      if (v === undefined) throw new StageError(stage.name, `secret "${id}" reads the environment variable ${s.env}, which is not set`, `secrets.${id}`, stage.definedAt);
      return Buffer.from(v);
    }
    try {
      return await readFile(resolve(o.projectDir, s.file));
    } catch (e) {
      throw new StageError(stage.name, `secret "${id}": cannot read ${s.file}: ${(e as Error).message}`, `secrets.${id}`, stage.definedAt);
    }
  }
}

/**
 * Stages that will build but wait for others: each says which ("waiting for build, base") on its
 * progress line until the last of them is done, so a long base does not look like a hang.
 */
class WaitingStages {
  private readonly left = new Map<Stage, Set<Stage>>();
  /** Who waits for each stage, so a finished stage visits only those (not every waiting stage). */
  private readonly waiters = new Map<Stage, Stage[]>();

  constructor(entries: readonly PlanEntry[], deps: (s: Stage) => Stage[], private readonly emit: BuildEventHandler) {
    // A cached stage is done at once: waiting for it is not worth a line.
    const works = new Set(entries.filter((e) => e.status !== "cached").map((e) => e.stage));
    for (const e of entries) {
      const d = new Set(deps(e.stage).filter((x) => works.has(x)));
      if ((e.status !== "new" && e.status !== "rebuild") || !d.size) continue;
      this.left.set(e.stage, d);
      for (const x of d) {
        const w = this.waiters.get(x);
        if (w) w.push(e.stage);
        else this.waiters.set(x, [e.stage]);
      }
    }
  }

  announce(): void {
    for (const s of this.left.keys()) this.say(s);
  }

  done(dep: Stage): void {
    for (const s of this.waiters.get(dep) ?? []) {
      const left = this.left.get(s);
      if (!left?.delete(dep)) continue;
      if (left.size) this.say(s);
      else this.left.delete(s);
    }
    this.waiters.delete(dep);
  }

  private say(s: Stage): void {
    const names = [...this.left.get(s)!].map((d) => d.name).sort();
    this.emit({ type: "stage-phase", stage: s.name, phase: `waiting for ${names.join(", ")}` });
  }
}

/** The layer a stage added on top of its base, if any: its history's last entry says. */
function ownLayer(stored: StageResult): LayerRef | undefined {
  const last = stored.config.history?.[stored.config.history.length - 1];
  if (!last || last.empty_layer) return undefined;
  return stored.layers[stored.layers.length - 1];
}

/**
 * The image after a stage: its base's config, its own fields, its history entry and layer; with
 * `squashed`, the whole chain replaced by that one layer.
 */
export function finalConfig(stage: Stage, base: ImageConfig, own: LayerRef | undefined, squashed: LayerRef | undefined, sde: number, generated?: Record<string, string>): ImageConfig {
  const created = createdTimestamp(sde);
  // Generated labels (labelsFrom) go under the stage's own labels, which win, as in stacker.
  if (generated && Object.keys(generated).length) base = { ...base, config: { ...base.config, Labels: { ...(base.config?.Labels ?? {}), ...generated } } };
  let config = applyStageConfig(base, stage.spec, "final", { stage: stage.name });
  config = addLayer(config, own ? own.diffId : null, stageHistoryEntry(stage.name, stage.spec, { created, emptyLayer: !own }));
  if (squashed) config = squashLayers(config, squashed.diffId);
  config.created = created;
  return config;
}

async function hasEntries(dir: string): Promise<boolean> {
  return (await readdir(dir)).length > 0;
}

/**
 * The stage's error for a full disk or quota met while writing into the store (while building it,
 * or while compressing its layers for an output), or undefined when `e` is something else.
 */
export function storeFullError(e: unknown, store: Store, stage: Stage): StageError | undefined {
  const full = noSpaceCause(e);
  if (!full) return undefined;
  return new StageError(stage.name, `no space left on the device of the store ${store.root} (${full.message}); ${NO_SPACE_ADVICE}`, undefined, stage.definedAt);
}

