// The project state, `.mstage/state.json` beside images.ts: per stage name, the inputs and keys of
// its last build, so `plan` can say why a stage changes.
import { join } from "node:path";
import { UserError } from "./errors.ts";
import { isSha256Digest } from "./digest.ts";
import { readFileIfPresent, writeFileAtomicSync } from "./atomic-file.ts";
import type { StageInputs } from "./keys.ts";
import type { Stage } from "./model.ts";

export interface StageRecord {
  layerKey: string;
  configKey: string;
  inputs: StageInputs;
  /** ISO time of the build that recorded this. */
  builtAt: string;
  manifestDigest?: string;
  /** How that manifest's own layers were compressed, when not gzip (the no-op check compares it). */
  compression?: "zstd";
}

export interface ProjectState {
  version: 1;
  stages: Record<string, StageRecord>;
}

export function statePath(projectDir: string): string {
  return join(projectDir, ".mstage", "state.json");
}

export async function loadState(projectDir: string): Promise<ProjectState> {
  const file = statePath(projectDir);
  const text = readFileIfPresent(file);
  if (text === undefined) return { version: 1, stages: {} };
  try {
    const data = JSON.parse(text) as ProjectState;
    if (data.version !== 1 || typeof data.stages !== "object" || data.stages === null) throw new Error("unknown format");
    for (const [name, r] of Object.entries(data.stages)) {
      // A manifest digest from here names a blob of ./oci (up's no-op check): it must be a digest.
      if (r?.manifestDigest !== undefined && !isSha256Digest(r.manifestDigest)) throw new Error(`stage ${name} has manifestDigest ${JSON.stringify(r.manifestDigest)}, not a sha256 digest`);
    }
    return data;
  } catch (e) {
    throw new UserError(`${file} is not a valid mstage state file (${(e as Error).message}); delete it and the next plan starts afresh`);
  }
}

/** Records a stage as built with these inputs (what `up` calls after building or reusing it). */
/** What recordBuild needs of a plan entry (state.ts stays below plan.ts, which reads the state). */
export interface BuiltEntry {
  stage: Stage;
  status: string;
  layerKey: string;
  configKey: string;
  inputs?: StageInputs;
}

export function recordBuild(state: ProjectState, entry: BuiltEntry, extra: { manifestDigest?: string; compression?: "gzip" | "zstd" } = {}): void {
  if (entry.status === "unused" || !entry.inputs) return;
  state.stages[entry.stage.name] = {
    layerKey: entry.layerKey,
    configKey: entry.configKey,
    inputs: entry.inputs,
    builtAt: new Date().toISOString(),
    ...(extra.manifestDigest ? { manifestDigest: extra.manifestDigest } : {}),
    ...(extra.manifestDigest && extra.compression === "zstd" ? { compression: "zstd" as const } : {}),
  };
}

/** Writes the state atomically (temp file + rename), so a crash never leaves half a file. */
export async function saveState(projectDir: string, state: ProjectState): Promise<void> {
  writeFileAtomicSync(statePath(projectDir), JSON.stringify(state) + "\n");
}
