// The project state, `.mstage/state.json` beside images.ts: per stage name, the inputs and keys of
// its last build, so `plan` can say why a stage changes. The inputs' file fingerprints (one line per
// file of every local source: 8 MB for 200 000 files) live beside it in `.mstage/files.json`, named
// by its digest in state.json, and are read only when a reason needs them: a no-op plan never does.
import { join } from "node:path";
import { sha256Hex } from "./canonical.ts";
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
  /** sha256 hex of `.mstage/files.json`, which holds each stage's `inputs.files`. */
  files?: string;
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
    const sidecar = lazyFiles(projectDir, data.files);
    for (const [name, r] of Object.entries(data.stages)) {
      // A manifest digest from here names a blob of ./oci (up's no-op check): it must be a digest.
      if (r?.manifestDigest !== undefined && !isSha256Digest(r.manifestDigest)) throw new Error(`stage ${name} has manifestDigest ${JSON.stringify(r.manifestDigest)}, not a sha256 digest`);
      if (r?.inputs && typeof r.inputs === "object" && r.inputs.files === undefined) {
        Object.defineProperty(r.inputs, "files", { get: () => sidecar()[name] ?? {}, enumerable: true, configurable: true });
      }
    }
    delete data.files;
    return data;
  } catch (e) {
    throw new UserError(`${file} is not a valid mstage state file (${(e as Error).message}); delete it and the next plan starts afresh`);
  }
}

function filesPath(projectDir: string): string {
  return join(projectDir, ".mstage", "files.json");
}

/**
 * Each stage's `inputs.files` from files.json, read on first use. A file that is missing or is not
 * the one state.json names (a crash between the two writes) gives none: reasons then say only that
 * a source changed, never name the wrong files.
 */
function lazyFiles(projectDir: string, digest: string | undefined): () => Record<string, StageInputs["files"]> {
  let files: Record<string, StageInputs["files"]> | undefined;
  return () => {
    if (files) return files;
    files = {};
    const text = digest === undefined ? undefined : readFileIfPresent(filesPath(projectDir));
    if (text !== undefined && sha256Hex(text) === digest) {
      try {
        files = JSON.parse(text) as Record<string, StageInputs["files"]>;
      } catch {
        // Only reasons read it: an unreadable one names no files.
      }
    }
    return files;
  };
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

/**
 * Writes the state atomically (temp file + rename), so a crash never leaves half a file: first
 * files.json, then state.json naming its digest.
 */
export async function saveState(projectDir: string, state: ProjectState): Promise<void> {
  const files: Record<string, StageInputs["files"]> = {};
  const stages: Record<string, StageRecord> = {};
  for (const [name, r] of Object.entries(state.stages)) {
    files[name] = r.inputs.files;
    const { files: _, ...inputs } = r.inputs;
    stages[name] = { ...r, inputs: inputs as StageInputs };
  }
  const text = JSON.stringify(files) + "\n";
  writeFileAtomicSync(filesPath(projectDir), text);
  writeFileAtomicSync(statePath(projectDir), JSON.stringify({ version: 1, stages, files: sha256Hex(text) }) + "\n");
}
