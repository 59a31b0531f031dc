// `mstage gc --verify`: every blob hashed against its name, every extracted layer compared with its
// tar (by a checker the caller passes: layer/verify.ts, since store/ does not extract layers). What
// is corrupt is removed, and so is every result that needs a removed blob, so the next `up`
// rebuilds or re-pulls it; an extracted layer is simply extracted again from its tar. A layer kept
// without a tar (a stage's own, committed lazily) has no other copy: a result needing it goes too.
import { createHash } from "node:crypto";
import { createReadStream, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { LAYER_COMPRESSIONS, readCompressedRecord, tempName, type StoreLayout } from "@mstage/core";
import { digestOf, isDigest, type Digest } from "../oci/digest.ts";
import { listResults, type ResultInfo } from "./gc.ts";
import { layerBlob } from "./layers.ts";
import { readStoredResultRaw } from "./results.ts";

/** Whether the extracted layer dir matches its tar: true, false, or null when it cannot be told (no tar). */
export type LayerChecker = (diffId: Digest, dir: string) => Promise<boolean | null>;

export interface VerifyReport {
  checkedBlobs: number;
  checkedLayers: number;
  /** Extracted layers whose tar is not in the store, so they could not be compared. */
  uncheckedLayers: number;
  corruptBlobs: Digest[];
  corruptLayers: Digest[];
  /** Results removed because a blob they need was corrupt, or a layer stored only as its dir. */
  droppedResults: ResultInfo[];
}

async function hashFile(file: string): Promise<Digest> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) hash.update(chunk);
  return digestOf(hash);
}

/** Checks and cleans the store. The caller holds its exclusive lock and runs inside the user namespace. */
export async function verifyStore(layout: StoreLayout, checkLayer: LayerChecker): Promise<VerifyReport> {
  const report: VerifyReport = { checkedBlobs: 0, checkedLayers: 0, uncheckedLayers: 0, corruptBlobs: [], corruptLayers: [], droppedResults: [] };
  for (const hex of readdirSync(layout.blobsDir).sort()) {
    const d = `sha256:${hex}`;
    if (!isDigest(d)) continue;
    report.checkedBlobs++;
    if ((await hashFile(layout.blob(d))) !== d) {
      rmSync(layout.blob(d), { force: true });
      report.corruptBlobs.push(d);
    }
  }
  // Blobs first: a layer is compared with its tar only once that tar is known good.
  for (const hex of readdirSync(layout.layersDir).sort()) {
    const diffId = `sha256:${hex}`;
    if (!isDigest(diffId)) continue;
    const ok = await checkLayer(diffId, layout.layer(diffId));
    if (ok === null) {
      report.uncheckedLayers++;
      continue;
    }
    report.checkedLayers++;
    if (!ok) {
      // Renamed into tmp/ first, as gc does, so no reader ever sees half a layer.
      const doomed = tempName(layout.tmpDir, "verify");
      renameSync(layout.layer(diffId), doomed);
      rmSync(doomed, { recursive: true, force: true });
      report.corruptLayers.push(diffId);
    }
  }
  const lost = report.corruptLayers.filter((d) => !layerBlob(layout, d));
  if (report.corruptBlobs.length || lost.length) {
    const gone = new Set<string>([...report.corruptBlobs, ...lost]);
    const byKey = new Map(listResults(layout).map((r) => [r.key, r]));
    for (const name of readdirSync(layout.resultsDir)) {
      if (!name.endsWith(".json")) continue;
      const record = readStoredResultRaw(join(layout.resultsDir, name));
      if (!record) continue;
      const needs = [
        ...record.layers.flatMap((l) => [l.diffId, ...LAYER_COMPRESSIONS.map((f) => readCompressedRecord(layout, l.diffId, f)?.digest)]),
        ...(record.blobs ?? []),
      ];
      if (!needs.some((d) => d !== undefined && gone.has(d))) continue;
      rmSync(join(layout.resultsDir, name), { force: true });
      const info = byKey.get(record.key);
      if (info) report.droppedResults.push(info);
    }
  }
  return report;
}
