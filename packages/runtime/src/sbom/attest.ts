// Attestations for one output image: the SBOM (SPDX 2.3 or CycloneDX 1.5) and the SLSA provenance,
// as OCI artifacts whose subject is the image manifest. The scan behind the SBOM is cached in the
// store under the image's layer chain, so an image whose layers did not change is not scanned again;
// a new chain reads its files' checksums and build info from each layer's record (layer-facts.ts),
// so only the files of its changed layers are read.
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Digest } from "../oci/digest.ts";
import type { Descriptor } from "../oci/types.ts";
import { canonicalJson } from "@mstage/core";
import { ensureLayerExtracted } from "../layer/extract.ts";
import { withRootfs } from "../sandbox/overlay.ts";
import { writeFileAtomic } from "../store/atomic-files.ts";
import type { Store } from "../store/store.ts";
import { makeArtifact, type Artifact } from "./artifact.ts";
import { IN_TOTO_MEDIA_TYPE, provenanceStatement, type ProvenanceInput } from "./provenance.ts";
import { LayerFacts } from "./layer-facts.ts";
import { scanRootfs } from "./scan.ts";
import { SPDX_MEDIA_TYPE, spdxDocument } from "./spdx.ts";
import type { AttestationSubject } from "./subject.ts";
import { SCAN_VERSION, type ImageScan } from "./types.ts";

export type SbomFormat = "spdx" | "cyclonedx";

export const CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json";

/**
 * CycloneDX 1.5 JSON of a scan. The CycloneDX library is loaded only here, so runs that write
 * SPDX (the default) never load it.
 */
export async function cyclonedxDocument(scan: ImageScan, subject: AttestationSubject, tool: { name: string; version: string }): Promise<string> {
  const { cyclonedxJson } = await import("./cyclonedx.ts");
  return cyclonedxJson(scan, subject, tool);
}

export interface AttestOptions {
  store: Store;
  subject: AttestationSubject;
  /** The image manifest's descriptor: the artifacts' `subject`. */
  manifest: Descriptor;
  /** The image's layers by diff-id, base first. */
  diffIds: readonly Digest[];
  sbomFormat?: SbomFormat;
  /** Without it no provenance is made. */
  provenance?: Omit<ProvenanceInput, "subject">;
  tool: { name: string; version: string };
  onNote?: (message: string) => void;
}

export async function attestImage(o: AttestOptions): Promise<Artifact[]> {
  const scan = await scanImage(o.store, o.diffIds, o.onNote);
  const created = o.subject.created;
  const sbom =
    (o.sbomFormat ?? "spdx") === "spdx"
      ? { type: SPDX_MEDIA_TYPE, bytes: Buffer.from(canonicalJson(spdxDocument(scan, o.subject, `${o.tool.name}-${o.tool.version}`))) }
      : { type: CYCLONEDX_MEDIA_TYPE, bytes: Buffer.from(await cyclonedxDocument(scan, o.subject, o.tool)) };
  const out = [await makeArtifact(o.store, { kind: "sbom", artifactType: sbom.type, document: sbom.bytes, subject: o.manifest, created })];
  if (o.provenance) {
    const statement = provenanceStatement({ ...o.provenance, subject: o.subject });
    out.push(await makeArtifact(o.store, { kind: "provenance", artifactType: IN_TOTO_MEDIA_TYPE, document: Buffer.from(canonicalJson(statement)), subject: o.manifest, created }));
  }
  return out;
}

/** The cache key of a layer chain's scan: the same layers, the same filesystem, the same scan. */
export function scanKey(diffIds: readonly Digest[]): string {
  return createHash("sha256").update(`mstage-scan-v${SCAN_VERSION}\n${diffIds.join("\n")}`).digest("hex");
}

function scanPath(store: Store, diffIds: readonly Digest[]): string {
  return store.layout.scan(scanKey(diffIds));
}

/** A chain's scan as the store keeps it: with its layers, so gc can tell when it is garbage. */
interface ChainScanFile extends ImageScan {
  layers: string[];
}

/** The cached scan of a layer chain, if one was made. */
export async function cachedScan(store: Store, diffIds: readonly Digest[]): Promise<ImageScan | undefined> {
  try {
    const { layers: _layers, ...scan } = JSON.parse(await readFile(scanPath(store, diffIds), "utf8")) as ChainScanFile;
    return scan.version === SCAN_VERSION ? scan : undefined;
  } catch {
    return undefined;
  }
}

/** Scans the image made of these layers (mounted read-only when more than one), or returns the cached scan. */
export async function scanImage(store: Store, diffIds: readonly Digest[], onNote?: (m: string) => void): Promise<ImageScan> {
  const hit = await cachedScan(store, diffIds);
  if (hit) return hit;
  const layers: Array<{ diffId: Digest; dir: string }> = [];
  for (const diffId of diffIds) layers.unshift({ diffId, dir: await ensureLayerExtracted(store, diffId, undefined, { onNote }) });
  const scanIn = async (root: string): Promise<ImageScan> => {
    const facts = new LayerFacts(store, root, layers);
    const found = await scanRootfs(root, facts);
    await facts.save();
    return found;
  };
  // A one-layer image is its layer's dir as extracted: read in place, with no overlay to mount and
  // unmount (two processes). Its whiteouts, if any, hide nothing and are not regular files, the
  // only entries a scan reads.
  const scan =
    layers.length === 0
      ? { version: SCAN_VERSION, packages: [], files: [] }
      : layers.length === 1
        ? await scanIn(layers[0]!.dir)
        : await withRootfs({ lowers: layers.map((l) => l.dir) }, scanIn);
  const path = scanPath(store, diffIds);
  await mkdir(dirname(path), { recursive: true });
  const file: ChainScanFile = { ...scan, layers: [...diffIds] };
  await writeFileAtomic(path, JSON.stringify(file), store.layout.tmpDir);
  return scan;
}
