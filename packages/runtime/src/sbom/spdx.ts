// SPDX 2.3 JSON (spdx.github.io/spdx-spec/v2.3): one package for the image, one per base image, one
// per package found in it, and the files those packages own. IDs are derived from names and
// purls, times from SOURCE_DATE_EPOCH, so the same image always gives the same bytes.
import { createHash } from "node:crypto";
import { digestHex, type Digest } from "../oci/digest.ts";
import { licenseRef, spdxLicenseId } from "./licenses.ts";
import { ociPurl, type AttestationSubject } from "./subject.ts";
import type { FoundPackage, ImageScan } from "./types.ts";

export const SPDX_MEDIA_TYPE = "application/spdx+json";

export function spdxDocument(scan: ImageScan, subject: AttestationSubject, tool: string): Record<string, unknown> {
  const imageId = "SPDXRef-Image";
  const extracted = new Map<string, string>();
  const fileIds = new Map(scan.files.map((f) => [f.path, `SPDXRef-File-${shortHash(f.path)}`]));
  const fileSha1 = new Map(scan.files.map((f) => [f.path, f.sha1]));
  const usedIds = new Set<string>();
  const packageId = (p: FoundPackage) => {
    let id = `SPDXRef-Package-${p.kind}-${idPart(p.name)}-${shortHash(`${p.purl}\n${p.foundIn}`)}`;
    while (usedIds.has(id)) id += "-x";
    usedIds.add(id);
    return id;
  };

  const image = containerPackage(imageId, subject.name, subject.digest);
  const bases = subject.bases.map((b, i) => containerPackage(`SPDXRef-BaseImage-${i + 1}`, b.name, b.digest));

  const relationships: Array<Record<string, string>> = [{ spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES", relatedSpdxElement: imageId }];
  for (const b of bases) relationships.push({ spdxElementId: imageId, relationshipType: "DESCENDANT_OF", relatedSpdxElement: b.SPDXID });

  const packages = scan.packages.map((p) => {
    const id = packageId(p);
    relationships.push({ spdxElementId: imageId, relationshipType: "CONTAINS", relatedSpdxElement: id });
    const files = p.files.filter((f) => fileIds.has(f));
    const declared = p.licenses.length
      ? p.licenses
          .map((l) => {
            const spdx = spdxLicenseId(l);
            if (spdx) return spdx;
            const ref = licenseRef(l);
            extracted.set(ref, l);
            return ref;
          })
          .filter((l, i, all) => all.indexOf(l) === i)
          .join(" AND ")
      : "NOASSERTION";
    return {
      SPDXID: id,
      name: p.name,
      ...(p.version ? { versionInfo: p.version } : {}),
      downloadLocation: "NOASSERTION",
      ...(files.length
        ? { filesAnalyzed: true, hasFiles: files.map((f) => fileIds.get(f)!), packageVerificationCode: { packageVerificationCodeValue: verificationCode(files.map((f) => fileSha1.get(f)!)) } }
        : { filesAnalyzed: false }),
      sourceInfo: `${p.kind === "golang" ? "built into" : "listed in"} ${p.foundIn}${p.sourceName ? (p.kind === "golang" ? `; ${p.sourceName}` : `; source package ${p.sourceName}`) : ""}`,
      externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: p.purl }],
      ...(p.arch ? { annotations: [annotation(subject, `architecture=${p.arch}`)] } : {}),
      licenseConcluded: "NOASSERTION",
      licenseDeclared: declared,
      copyrightText: "NOASSERTION",
    };
  });

  const files = scan.files.map((f) => ({
    SPDXID: fileIds.get(f.path)!,
    fileName: `.${f.path}`,
    checksums: [
      { algorithm: "SHA1", checksumValue: f.sha1 },
      { algorithm: "SHA256", checksumValue: f.sha256 },
    ],
    licenseConcluded: "NOASSERTION",
    copyrightText: "NOASSERTION",
  }));

  return {
    spdxVersion: "SPDX-2.3",
    dataLicense: "CC0-1.0",
    SPDXID: "SPDXRef-DOCUMENT",
    name: `${subject.name}@${subject.digest}`,
    documentNamespace: `https://mstage.dev/spdx/${encodeURIComponent(subject.name)}/${digestHex(subject.digest)}`,
    creationInfo: { created: subject.created, creators: [`Tool: ${tool}`] },
    packages: [image, ...bases, ...packages],
    files,
    relationships,
    ...(extracted.size
      ? {
          hasExtractedLicensingInfos: [...extracted].sort(([a], [b]) => (a < b ? -1 : 1)).map(([licenseId, name]) => ({
            licenseId,
            name,
            extractedText: `The license "${name}" as the package's copyright file names it.`,
          })),
        }
      : {}),
  };
}

function annotation(subject: AttestationSubject, comment: string) {
  return { annotationType: "OTHER", annotator: "Tool: mstage", annotationDate: subject.created, comment };
}

/** SPDX 2.3 §7.9: SHA-1 over the sorted SHA-1s of the package's files, concatenated. */
function verificationCode(sha1s: string[]): string {
  return createHash("sha1").update([...sha1s].sort().join("")).digest("hex");
}

function shortHash(s: string): string {
  return createHash("sha256").update(s).digest("hex").slice(0, 12);
}

function idPart(s: string): string {
  return s.replace(/[^A-Za-z0-9.-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60) || "x";
}

/** An image as an SPDX package: the built image and each of its bases alike. */
function containerPackage(SPDXID: string, name: string, digest: Digest) {
  return {
    SPDXID,
    name,
    versionInfo: digest,
    downloadLocation: "NOASSERTION",
    filesAnalyzed: false,
    primaryPackagePurpose: "CONTAINER",
    checksums: [{ algorithm: "SHA256", checksumValue: digestHex(digest) }],
    externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: ociPurl(name, digest) }],
    licenseConcluded: "NOASSERTION",
    licenseDeclared: "NOASSERTION",
    copyrightText: "NOASSERTION",
  };
}
