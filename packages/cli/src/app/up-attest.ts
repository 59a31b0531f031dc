// The attestations of `mstage up`: for each exported image an SBOM and a SLSA provenance statement,
// made after its manifest (their subject) and attached as referrers in every output and on push.
// `--sbom=false` turns both off; `--sbom-format cyclonedx` writes CycloneDX instead of SPDX.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import type { PlanEntry, Stage, StageInputs } from "@mstage/core";
import {
  attestImage,
  createdTimestamp,
  scanImage,
  type Artifact,
  type BuiltImage,
  type BuiltStage,
  type ResourceDescriptor,
  type Store,
} from "@mstage/runtime";
import { MSTAGE_VERSION, type AttestUpOptions } from "./attest-options.ts";

export { parseAttestOptions, type AttestUpOptions } from "./attest-options.ts";

const BUILDER_ID = "https://mstage.dev/builder/v1";

export class UpAttestations {
  private readonly configSha256: string;
  private readonly startedOn = new Date().toISOString();
  private readonly scans = new Map<string, Promise<unknown>>();

  constructor(
    private readonly o: AttestUpOptions & {
      store: Store;
      file: string;
      projectDir: string;
      entries: readonly PlanEntry[];
      deps: (s: Stage) => Stage[];
      targets: string[];
      sourceDateEpoch: number;
      onNote?: (m: string) => void;
    },
  ) {
    this.configSha256 = createHash("sha256").update(readFileSync(o.file)).digest("hex");
  }

  /**
   * Starts the package scan behind a stage's SBOM, so that it reads the image's files while export
   * compresses its layers (worker threads) instead of after. forImage waits for it; a scan that
   * failed here is made again there, which reports the error.
   */
  scanAhead(built: BuiltStage): void {
    if (!this.o.sbom) return;
    const diffIds = built.config.rootfs.diff_ids;
    const key = diffIds.join("\n");
    if (!this.scans.has(key)) this.scans.set(key, scanImage(this.o.store, diffIds, this.o.onNote).catch(() => undefined));
  }

  /** The SBOM and provenance of one exported image; none with --sbom=false. */
  async forImage(entry: PlanEntry, built: BuiltStage, image: BuiltImage): Promise<Artifact[]> {
    if (!this.o.sbom) return [];
    await this.scans.get(image.layers.map((l) => l.diffId).join("\n"));
    const platform = entry.inputs?.platform ?? `${image.config.os}/${image.config.architecture}`;
    const subject = {
      name: entry.stage.name,
      digest: image.descriptor.digest,
      platform,
      bases: built.base ? [built.base] : [],
      created: createdTimestamp(this.o.sourceDateEpoch),
    };
    return attestImage({
      store: this.o.store,
      subject,
      manifest: image.descriptor,
      diffIds: image.layers.map((l) => l.diffId),
      sbomFormat: this.o.format,
      tool: { name: "mstage", version: MSTAGE_VERSION },
      onNote: this.o.onNote,
      provenance: {
        configPath: relative(this.o.projectDir, this.o.file) || this.o.file,
        configSha256: this.configSha256,
        targets: this.o.targets,
        args: argsWithoutPaths(process.argv.slice(2)),
        sourceDateEpoch: this.o.sourceDateEpoch,
        dependencies: this.dependencies(entry.stage),
        builder: { id: BUILDER_ID, version: MSTAGE_VERSION },
        startedOn: this.startedOn,
        finishedOn: new Date().toISOString(),
      },
    });
  }

  /** Every base, debian() pin and local source of the stage and of the stages it reads from. */
  private dependencies(stage: Stage): ResourceDescriptor[] {
    const byStage = new Map(this.o.entries.map((e) => [e.stage, e]));
    const out: ResourceDescriptor[] = [];
    const seen = new Set<Stage>();
    const visit = (s: Stage) => {
      if (seen.has(s)) return;
      seen.add(s);
      const inputs = byStage.get(s)?.inputs;
      if (inputs) out.push(...inputDependencies(inputs));
      for (const d of this.o.deps(s)) visit(d);
    };
    visit(stage);
    return out;
  }
}

function inputDependencies(i: StageInputs): ResourceDescriptor[] {
  const out: ResourceDescriptor[] = [];
  const b = i.base;
  if (b.kind === "image" && b.identity) out.push({ uri: `docker://${b.ref}`, digest: sha(b.identity) });
  else if (b.kind === "oci") out.push({ uri: `oci:${b.layout}${b.ref ? `:${b.ref}` : ""}`, digest: sha(b.identity) });
  else if (b.kind === "debian") {
    out.push({
      uri: `debian:${b.suite}${b.variant ? `?variant=${b.variant}` : ""}`,
      digest: sha(b.identity),
      annotations: { packages: b.packages.join(","), ...(b.mirror ? { mirror: b.mirror } : {}) },
    });
  } else if (b.kind === "tarball" && b.source.kind === "local") out.push({ uri: `file:${b.source.path}`, digest: sha(b.source.digest) });
  for (const c of i.copy) {
    if (c.source.kind === "local") out.push({ uri: `file:${c.source.path}`, digest: sha(c.source.digest) });
  }
  return out;
}

/** `sha256:<hex>` or bare hex as an in-toto digest set. */
function sha(d: string): Record<string, string> {
  const [alg, hex] = d.includes(":") ? d.split(":", 2) : ["sha256", d];
  return { [alg!]: hex! };
}

/** The command line as the user typed it, minus host paths that differ between machines. */
function argsWithoutPaths(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--store" || a === "-f" || a === "--file") {
      i++;
      continue;
    }
    if (a.startsWith("--store=") || a.startsWith("--file=")) continue;
    out.push(a);
  }
  return out;
}
