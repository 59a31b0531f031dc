// SLSA provenance v1 (slsa.dev/spec/v1.0/provenance) in an in-toto v1 statement: what built the
// image (mstage and its version), from what definition (images.ts by path and sha256, targets,
// platform, arguments), on what (every base digest, debian() package pin, local source digest),
// and when. Only runDetails.metadata's times differ between two builds of the same inputs.
import { digestHex } from "../oci/digest.ts";
import type { AttestationSubject } from "./subject.ts";

export const IN_TOTO_MEDIA_TYPE = "application/vnd.in-toto+json";
export const SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1";

export interface ResourceDescriptor {
  uri: string;
  name?: string;
  digest?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ProvenanceInput {
  subject: AttestationSubject;
  /** images.ts, relative to the project directory. */
  configPath: string;
  configSha256: string;
  targets: string[];
  args: string[];
  sourceDateEpoch: number;
  dependencies: ResourceDescriptor[];
  builder: { id: string; version: string };
  startedOn: string;
  finishedOn: string;
}

export function provenanceStatement(p: ProvenanceInput): Record<string, unknown> {
  const deps = [...new Map(p.dependencies.map((d) => [`${d.uri}\n${JSON.stringify(d.digest ?? {})}`, d])).values()].sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
  return {
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: p.subject.name, digest: { sha256: digestHex(p.subject.digest) } }],
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: "https://mstage.dev/build/v1",
        externalParameters: {
          config: { path: p.configPath, digest: { sha256: p.configSha256 } },
          target: p.subject.name,
          targets: p.targets,
          platform: p.subject.platform,
          args: p.args,
        },
        internalParameters: { SOURCE_DATE_EPOCH: p.sourceDateEpoch },
        resolvedDependencies: [
          { uri: `file:${p.configPath}`, digest: { sha256: p.configSha256 } },
          ...deps,
        ],
      },
      runDetails: {
        builder: { id: p.builder.id, version: { mstage: p.builder.version } },
        metadata: { startedOn: p.startedOn, finishedOn: p.finishedOn },
      },
    },
  };
}
