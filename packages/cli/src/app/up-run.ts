// The work of `mstage up`, apart from argument parsing and rendering: load, plan, build, write the
// outputs, record state. `mstage shell` reuses it to build a stage before opening it.
import { resolve } from "node:path";
import {
  UserError,
  buildGraph,
  formatPlatform,
  hostPlatform,
  planStages,
  recordBuild,
  saveState,
  writeLock,
  type LocalDigest,
  type Plan,
  type PlanEntry,
  type Stage,
} from "@mstage/core";
import {
  BaseProvider,
  Store,
  downloadDigest,
  resolveGitRef,
  buildImage,
  buildIndex,
  buildPlan,
  imageSize,
  prepareStepHelpers,
  isBuiltIndex,
  sourceDateEpochFrom,
  compressLayer,
  storeFullError,
  writeDockerArchive,
  writeOciLayout,
  type BuildEventHandler,
  type BuiltImage,
  type BuiltOutput,
  type BuiltStage,
  type Artifact,
  type Digest,
  type OutputImage,
} from "@mstage/runtime";
import { loadConfig } from "../config/load.ts";
import { createPlanContext, requireTargets } from "./project.ts";
import type { OutputSpec } from "./up-noop.ts";
import type { LoadedConfig } from "../config/load.ts";
import { UpRegistry, type RegistryUpOptions } from "./up-registry.ts";
import { UpAttestations, type AttestUpOptions } from "./up-attest.ts";

export type { OutputSpec } from "./up-noop.ts";

export interface UpOptions {
  file: string;
  store: string;
  /** Stage names from the command line; default the exported stages. */
  targets: string[];
  /** Default: oci:./oci beside images.ts. */
  outputs: OutputSpec[];
  jobs: number;
  noCache?: boolean | string;
  refresh?: boolean;
  offline?: boolean;
  /** --allow-unpinned: download http() sources without sha256 and pin their digests in images.lock. */
  allowUnpinned?: boolean;
  verbose?: boolean;
  /** Build only, write no outputs (mstage shell). */
  noOutputs?: boolean;
  signal?: AbortSignal;
  onEvent?: BuildEventHandler;
  /** An already loaded config (watch mode reloads it only when its files change). */
  config?: LoadedConfig;
  /** Told the plan before anything is built. */
  onPlan?: (plan: Plan) => void;
  /** --push, --cache-from/--cache-to, --insecure-registry (up-registry.ts). */
  registry?: RegistryUpOptions;
  /** --sbom, --sbom-format (up-attest.ts); default an SPDX SBOM and a provenance per image. */
  attest?: AttestUpOptions;
  /** --platform: build only these of a stage's platforms (or these for a stage without any). */
  platforms?: string[];
  /** --compression: the layer compression of every output, over each stage's `compression`. */
  compression?: "gzip" | "zstd";
  /** Local source digests this run's no-op check already hashed (plan-handoff.ts), not walked again. */
  localDigests?: Map<string, LocalDigest>;
}

export interface UpSummary {
  projectDir: string;
  built: number;
  cached: number;
  configOnly: number;
  outputs: Array<{ dest: string; ref: string; digest: Digest; size: number }>;
  ms: number;
  stages: Map<Stage, BuiltStage>;
}

export async function runUp(o: UpOptions): Promise<UpSummary> {
  const started = Date.now();
  // The steps' host helpers are looked up (ldd, ~15 ms of child processes) while images.ts is
  // loaded and the plan is made, not after them.
  prepareStepHelpers();
  const config = o.config ?? (await loadConfig(o.file, { verbose: o.verbose }));
  const projectDir = config.projectDir;
  const graph = buildGraph(config.stages, config.targets, o.targets.length ? o.targets : undefined, { platforms: o.platforms });
  requireTargets(graph, config.file);

  const store = await Store.open(o.store);
  const storeLock = await store.lock("shared");
  const registry = new UpRegistry(o.registry ?? {}, o.onEvent, o.signal);
  try {
    const ctx = await createPlanContext({
      projectDir,
      store: store.root,
      noCache: o.noCache,
      refresh: o.refresh,
      offline: o.offline,
      allowUnpinned: o.allowUnpinned,
      resolveGit: (url, ref) => resolveGitRef(url, ref, o.signal),
      resolveHttp: (url) => downloadDigest(url, o.signal),
      recordPins: true,
    });
    const { lock, state } = ctx;
    const sde = sourceDateEpochFrom();
    const bases = new BaseProvider({
      store,
      projectDir,
      lock,
      refresh: o.refresh,
      offline: o.offline,
      sourceDateEpoch: sde,
      onEvent: o.onEvent,
      signal: o.signal,
      registry: registry.clientOptions,
    });
    const planWith = () =>
      planStages(graph, {
        ...ctx,
        localDigests: o.localDigests,
        hasResult: (key) => registry.hasResult(store, key, (k) => ctx.hasResult(k)),
        // Unlike `plan`, `up` resolves what images.lock does not pin (tags, and debian() bases,
        // which are built for that), updating the lock; the identities are the ones `plan` reads.
        resolveBase: (base, stage) => bases.resolveBase(base, stage),
      });
    let plan = await planWith();
    // A pinned debian() base is keyed from images.lock alone: its rootfs is made only for stages
    // that run on it. If the mirror has moved past the pin, the lock is updated: plan again.
    let repinned = false;
    for (const e of plan.entries) {
      const from = e.stage.spec.from;
      if ((e.status === "new" || e.status === "rebuild") && from.kind === "debian") repinned = (await bases.makeDebian(from, e.stage)) || repinned;
    }
    if (repinned) plan = await planWith();
    o.onPlan?.(plan);
    // Stages that finished are recorded even when a later one fails, so the next plan's reasons
    // speak about what is really in the store.
    const done = new Set<Stage>();
    let stages: Map<Stage, BuiltStage>;
    try {
      stages = await buildPlan({
        store,
        projectDir,
        entries: plan.entries,
        deps: (s) => graph.deps(s),
        bases,
        jobs: o.jobs,
        sourceDateEpoch: sde,
        onEvent: o.onEvent,
        signal: o.signal,
        onStage: (b) => done.add(b.stage),
      });
    } catch (e) {
      if (bases.lockChanged || ctx.sources.changed) await writeLock(projectDir, lock);
      for (const entry of plan.entries) if (done.has(entry.stage) && entry.status !== "config") recordBuild(state, entry);
      await saveState(projectDir, state);
      throw e;
    }
    if (bases.lockChanged || ctx.sources.changed) await writeLock(projectDir, lock);

    const outputs: UpSummary["outputs"] = [];
    const digests = new Map<Stage, Digest>();
    const compressions = new Map<Stage, "gzip" | "zstd">();
    if (!o.noOutputs) {
      const images: OutputImage[] = [];
      const pushTargets: Parameters<UpRegistry["push"]>[1] = [];
      const attest = new UpAttestations({ ...(o.attest ?? { sbom: true, format: "spdx" }), store, file: config.file, projectDir, entries: plan.entries, deps: (s) => graph.deps(s), targets: o.targets, sourceDateEpoch: sde, onNote: (message) => o.onEvent?.({ type: "note", message }) });
      o.onEvent?.({ type: "note", message: "writing outputs (a new layer is compressed once, then reused)" });
      // A build-only stage named on the command line is built and kept in the store; it becomes an
      // output only where the user asked for outputs explicitly (--output).
      const exported = new Set(config.targets);
      const written = graph.outputs.filter((out) => exported.has(out.stage) || o.outputs.length > 0);
      for (const out of graph.outputs) {
        if (!written.includes(out)) o.onEvent?.({ type: "note", message: `${out.stage.name} is build-only: kept in the store, not written as an output (pass --output oci:DIR to write it)` });
      }
      // A stage's own layer is kept without its tar until compressed: its size, for progress, is its result's.
      const layerSizes = new Map([...stages.values()].flatMap((b) => b.result.layers.map((l) => [l.diffId, l.size] as const)));
      for (const out of written) for (const instance of out.instances) attest.scanAhead(stages.get(instance)!);
      for (const out of written) {
        const spec = out.stage.spec;
        const format = o.compression ?? spec.compression ?? "gzip";
        // A layer's compressed blob is written into the store: a full disk there is the stage's error.
        const compress = (diffId: Digest) =>
          compressLayer(store, diffId, format, { size: layerSizes.get(diffId), onProgress: compressProgress(out.stage.name, diffId, format, o.onEvent) }).catch((e: unknown) => {
            throw storeFullError(e, store, out.stage) ?? e;
          });
        const built: BuiltImage[] = [];
        const referrers: { subject: Digest; artifacts: Artifact[] }[] = [];
        for (const instance of out.instances) {
          const b = stages.get(instance)!;
          const image = await buildImage(store, { config: b.config, annotations: instance.spec.annotations, base: b.base }, { compress });
          // Each platform's image gets its own SBOM and provenance (their subject is that image).
          referrers.push({ subject: image.descriptor.digest, artifacts: await attest.forImage(b.entry, b, image) });
          digests.set(instance, image.descriptor.digest);
          compressions.set(instance, format);
          built.push(image);
        }
        // A stage built for a list of platforms is one ref: an index of its per-platform images.
        const image: BuiltOutput = out.index ? await buildIndex(store, built, spec.annotations) : built[0]!;
        images.push({ refs: [out.stage.name, ...spec.tags], image, referrers: referrers.flatMap((r) => r.artifacts) });
        pushTargets.push({ stage: out.stage.name, tags: spec.tags, image, referrers });
      }
      const specs = !images.length ? [] : o.outputs.length ? o.outputs : [{ kind: "oci" as const, dir: resolve(projectDir, "oci") }];
      for (const spec of specs) {
        o.signal?.throwIfAborted();
        let shown = images;
        // `up some targets` leaves the output's other images as they were.
        if (spec.kind === "oci") await writeOciLayout(spec.dir, images, store, { signal: o.signal, keepOtherRefs: o.targets.length > 0 });
        else {
          shown = images.map((img) => ({ refs: img.refs, image: archiveImage(img, o.onEvent) }));
          await writeDockerArchive(spec.file, shown as Array<{ refs: string[]; image: BuiltImage }>, store, { signal: o.signal, sourceDateEpoch: sde });
        }
        const dest = spec.kind === "oci" ? `oci:${spec.dir}` : `docker-archive:${spec.file}`;
        for (const img of shown) {
          const size = imageSize(img.image);
          for (const ref of img.refs) {
            outputs.push({ dest, ref, digest: img.image.descriptor.digest, size });
            o.onEvent?.({ type: "output", dest, ref, digest: img.image.descriptor.digest, size });
          }
        }
      }
      if (registry.o.push) {
        for (const out of await registry.push(store, pushTargets)) {
          outputs.push(out);
          o.onEvent?.({ type: "output", ...out });
        }
      }
    }

    // After the outputs: an exported stage's cache entry then carries its image's package scan.
    await registry.exportResults(store, plan.entries.filter((e) => stages.has(e.stage)).map((e) => e.layerKey));

    for (const entry of plan.entries) {
      if (entry.status === "unused" || !stages.has(entry.stage)) continue;
      recordBuild(state, entry as PlanEntry, { manifestDigest: digests.get(entry.stage), compression: compressions.get(entry.stage) });
    }
    await saveState(projectDir, state);

    const count = (k: BuiltStage["outcome"]) => [...stages.values()].filter((b) => b.outcome === k).length;
    return { projectDir, built: count("built"), cached: count("cached"), configOnly: count("config"), outputs, ms: Date.now() - started, stages };
  } finally {
    await registry.close();
    await storeLock.release();
  }
}

/**
 * Turns a layer's compression progress into `compress` events: at most 5 a second, and the last
 * once (the compressor and compressLayer both report the end; a renderer prints a line for it).
 */
function compressProgress(stage: string, layer: Digest, format: "gzip" | "zstd", onEvent?: BuildEventHandler): ((done: number, total: number) => void) | undefined {
  if (!onEvent) return undefined;
  const started = Date.now();
  let shown = 0;
  let ended = false;
  return (done, total) => {
    const now = Date.now();
    if (ended || (done < total && now - shown < 200)) return;
    shown = now;
    ended = done >= total;
    onEvent({ type: "compress", stage, layer, format, done, total, started });
  };
}

/**
 * A docker-archive holds one image per ref, no index: a multi-platform output contributes its image
 * for this machine's platform, or else its first, and says which.
 */
function archiveImage(img: OutputImage, onEvent?: BuildEventHandler): BuiltImage {
  if (!isBuiltIndex(img.image)) return img.image;
  const host = formatPlatform(hostPlatform());
  const platformOf = (i: BuiltImage) => `${i.config.os}/${i.config.architecture}${i.config.variant ? `/${i.config.variant}` : ""}`;
  const chosen = img.image.images.find((i) => platformOf(i) === host) ?? img.image.images[0]!;
  onEvent?.({ type: "note", message: `docker-archive has no image index: ${img.refs[0]} is written for ${platformOf(chosen)} only` });
  return chosen;
}
