// The attestation flags of `up`, read without loading the runtime (a no-op `up` stays cheap).
import { UserError } from "@mstage/core";

/** The SBOM formats mstage writes (runtime's SbomFormat). */
export type SbomFormat = "spdx" | "cyclonedx";

export const MSTAGE_VERSION = "0.1.0";

export interface AttestUpOptions {
  /** Default true. */
  sbom: boolean;
  format: SbomFormat;
}

/** Reads `--sbom[=false]` and `--sbom-format` as cac hands them over (mri: `--sbom=false` is "false"). */
export function parseAttestOptions(opts: Record<string, unknown>): AttestUpOptions {
  const v = opts.sbom;
  const off = v === false || v === "false" || v === "0" || v === "no";
  if (v !== undefined && !off && v !== true && v !== "true") throw new UserError(`--sbom=${String(v)}: write --sbom=false to turn attestations off`);
  const f = opts.sbomFormat ?? "spdx";
  if (f !== "spdx" && f !== "cyclonedx") throw new UserError(`--sbom-format ${JSON.stringify(f)}: write spdx or cyclonedx`);
  return { sbom: !off, format: f };
}
