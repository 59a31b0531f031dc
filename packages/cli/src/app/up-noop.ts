// The cheap path of `mstage up`: when the plan finds every stage cached and each output already
// holds the manifest the state recorded, there is nothing to do. Decided with core alone (no user
// namespace, no runtime), so a no-op `up` costs about what `mstage plan` costs.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { buildGraph, ociLayoutBlob, planStages, readOciIndex, refNameOf, statePath, type LocalDigest, type OciIndexEntry } from "@mstage/core";
import { loadConfig } from "../config/load.ts";
import { createPlanContext, requireTargets } from "./project.ts";

export type OutputSpec = { kind: "oci"; dir: string } | { kind: "docker-archive"; file: string };

export interface OutputLine {
  dest: string;
  ref: string;
  digest: string;
  size: number;
}

export interface NoopSummary {
  projectDir: string;
  built: 0;
  cached: number;
  configOnly: 0;
  outputs: OutputLine[];
}

export async function checkNoop(o: {
  file: string;
  store: string;
  targets: string[];
  outputs: OutputSpec[];
  verbose?: boolean;
  /** The SBOM format each output must carry (with a provenance), or false for none. */
  attestations?: "spdx" | "cyclonedx" | false;
  platforms?: string[];
  /** --compression, over each stage's own. */
  compression?: "gzip" | "zstd";
  /** Filled with the digests of the local sources the check hashed (for the build that follows). */
  localDigests?: Map<string, LocalDigest>;
}): Promise<NoopSummary | undefined> {
  // A docker-archive is rewritten every time: its digest is not recorded anywhere cheap to check.
  if (o.outputs.some((x) => x.kind !== "oci")) return undefined;
  // The created time comes from SOURCE_DATE_EPOCH and is not part of any key.
  if (process.env.SOURCE_DATE_EPOCH) return undefined;
  // A first build (no recorded state, or an output layout not written yet) is never a no-op: the
  // config is then loaded and planned once, in the namespace, rather than here and there again.
  const file = resolve(o.file);
  const outputDirs = o.outputs.length ? o.outputs.map((x) => (x as { dir: string }).dir) : [resolve(dirname(file), "oci")];
  if (existsSync(file) && (!existsSync(statePath(dirname(file))) || outputDirs.some((d) => !existsSync(join(d, "index.json"))))) return undefined;
  const config = await loadConfig(o.file, { verbose: o.verbose });
  const graph = buildGraph(config.stages, config.targets, o.targets.length ? o.targets : undefined, { platforms: o.platforms });
  requireTargets(graph, config.file);
  // An image index's digest is not recorded in the state: up writes the layout again (cheaply).
  if (graph.outputs.some((x) => x.index)) return undefined;
  // An unpinned URL or git ref not in images.lock is "not resolved yet": not a no-op; runUp decides.
  const ctx = await createPlanContext({ projectDir: config.projectDir, store: o.store, allowUnpinned: true });
  const plan = await planStages(graph, { ...ctx, localDigests: o.localDigests });
  if (!plan.entries.every((e) => e.status === "cached" || e.status === "unused")) return undefined;

  const dirs = o.outputs.length ? o.outputs.map((x) => (x as { dir: string }).dir) : [resolve(config.projectDir, "oci")];
  const outputs: OutputLine[] = [];
  for (const dir of dirs) {
    const index = readOciIndex(dir);
    if (!index) return undefined;
    // Referrers (SBOM, provenance) have no ref name: only named entries are the refs.
    const byRef = new Map(index.filter((m) => refNameOf(m) !== undefined).map((m) => [refNameOf(m), m.digest]));
    if (!attestationsMatch(dir, index, plan.entries.filter((e) => e.target).map((e) => ctx.state.stages[e.stage.name]?.manifestDigest), o.attestations ?? "spdx")) return undefined;
    const wanted = plan.entries.filter((e) => e.target);
    // The layout is replaced whole on each write: it must hold exactly these refs.
    let refCount = 0;
    for (const e of wanted) {
      const digest = ctx.state.stages[e.stage.name]?.manifestDigest;
      if (!digest) return undefined;
      // The recorded manifest was compressed as the last run asked; this run may ask otherwise.
      if ((ctx.state.stages[e.stage.name]?.compression ?? "gzip") !== (o.compression ?? e.stage.spec.compression ?? "gzip")) return undefined;
      for (const ref of [e.stage.name, ...e.stage.spec.tags]) {
        refCount++;
        if (byRef.get(ref) !== digest) return undefined;
        const size = manifestSize(dir, digest);
        if (size === undefined) return undefined;
        outputs.push({ dest: `oci:${dir}`, ref, digest, size });
      }
    }
    if (byRef.size !== refCount) return undefined;
  }
  return { projectDir: config.projectDir, built: 0, cached: plan.entries.filter((e) => e.status === "cached").length, configOnly: 0, outputs };
}

const SBOM_TYPES = { spdx: "application/spdx+json", cyclonedx: "application/vnd.cyclonedx+json" } as const;

/**
 * Whether the layout's referrers are what this run would attach: with attestations, an SBOM of the
 * asked format and a provenance for each image; without, none at all.
 */
function attestationsMatch(dir: string, manifests: Array<OciIndexEntry & { artifactType?: string }>, digests: Array<string | undefined>, want: "spdx" | "cyclonedx" | false): boolean {
  const found = new Map<string, Set<string>>();
  for (const m of manifests) {
    if (!m.annotations?.["dev.mstage.attestation"]) continue;
    if (!want) return false;
    try {
      const subject = (JSON.parse(readFileSync(ociLayoutBlob(dir, m.digest), "utf8")) as { subject?: { digest?: string } }).subject?.digest;
      if (!subject) return false;
      let types = found.get(subject);
      if (!types) found.set(subject, (types = new Set()));
      types.add(m.artifactType ?? "");
    } catch {
      return false;
    }
  }
  if (!want) return true;
  return digests.every((d) => d !== undefined && found.get(d)?.has(SBOM_TYPES[want]) && found.get(d)?.has("application/vnd.in-toto+json"));
}

/** Manifest + config + layer sizes of an image in a layout; undefined when a blob is missing. */
function manifestSize(dir: string, digest: string): number | undefined {
  try {
    const bytes = readFileSync(ociLayoutBlob(dir, digest));
    const m = JSON.parse(bytes.toString("utf8")) as { config: { size: number }; layers: Array<{ size: number }> };
    return bytes.length + m.config.size + m.layers.reduce((n, l) => n + l.size, 0);
  } catch {
    return undefined;
  }
}
