// The store's results: what it remembers about a built stage (its whole layer chain and the image
// config after it), kept at results/<hex of key>.json.
import { readFileSync, utimesSync } from "node:fs";
import { readStoredResult, type StoreLayout } from "@mstage/core";
import { parseDigest, type Digest } from "../oci/digest.ts";
import { writeFileAtomic } from "./atomic-files.ts";
import type { HistoryEntry, ImageConfig } from "../oci/types.ts";

/** One layer of a chain, by its diff-id (the digest of the uncompressed tar). */
export interface LayerRef {
  diffId: Digest;
  /** Size of the uncompressed tar in bytes. */
  size: number;
}

/** The record kept at results/<hex of key>.json. */
export interface StageResult {
  /** The stage key (sha256:<hex>) this result was built for. */
  key: string;
  /** The whole chain, base first. */
  layers: LayerRef[];
  /** Runtime config after the stage, before config-only fields. */
  config: ImageConfig;
  history: HistoryEntry[];
  /** RFC 3339 time of the build. */
  created: string;
  /** The stage's name, shown by `mstage ls`. */
  stage?: string;
  /** The project directory that built it, shown by `mstage ls`. */
  project?: string;
  /** Other blobs this result needs kept (e.g. a pulled base's manifest and config); gc keeps them. */
  blobs?: Digest[];
}

/**
 * The result stored for a stage key, or null when there is none or any of its layers is gone (the
 * rule `plan` applies too: core's readStoredResult). Reading it marks it used (its file's mtime),
 * which `gc --max-size` uses to drop the oldest first.
 */
export function getResult(layout: StoreLayout, key: string): StageResult | null {
  const record = readStoredResult<StageResult>(layout, key);
  if (!record) return null;
  try {
    const now = new Date();
    utimesSync(layout.result(key), now, now);
  } catch {
    // Marking use is best-effort (a read-only store still serves results).
  }
  return record;
}

export async function putResult(layout: StoreLayout, key: string, record: StageResult): Promise<void> {
  if (record.key !== key) throw new Error(`result for ${key} carries key ${record.key}`);
  for (const l of record.layers) parseDigest(l.diffId);
  await writeFileAtomic(layout.result(key), JSON.stringify(record, null, 2) + "\n", layout.tmpDir);
}

/** A result file's record as written, whether or not its layers are there; null when unreadable. */
export function readStoredResultRaw(file: string): StageResult | null {
  try {
    const record = JSON.parse(readFileSync(file, "utf8")) as StageResult;
    return record && typeof record === "object" && Array.isArray(record.layers) ? record : null;
  } catch {
    return null;
  }
}
