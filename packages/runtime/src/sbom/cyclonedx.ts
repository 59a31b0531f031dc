// CycloneDX 1.5 JSON from a scan, built and serialised with the CycloneDX project's own library
// (its models follow the spec's rules on bom-refs, licenses and ordering, which hand-built JSON
// would have to copy). Times from SOURCE_DATE_EPOCH, the serial number from the image digest.
import { Enums, Models, SPDX, Serialize, Spec } from "@cyclonedx/cyclonedx-library";
import { createHash } from "node:crypto";
import { ociPurl, type AttestationSubject } from "./subject.ts";
import { spdxLicenseId } from "./licenses.ts";
import type { FoundPackage, ImageScan } from "./types.ts";

export function cyclonedxJson(scan: ImageScan, subject: AttestationSubject, tool: { name: string; version: string }): string {
  const bom = new Models.Bom({ serialNumber: uuidUrn(subject.digest) });
  bom.metadata.timestamp = new Date(subject.created);
  bom.metadata.tools.components.add(new Models.Component(Enums.ComponentType.Application, tool.name, { version: tool.version }));
  const image = new Models.Component(Enums.ComponentType.Container, subject.name, {
    bomRef: ociPurl(subject.name, subject.digest),
    version: subject.digest,
    purl: ociPurl(subject.name, subject.digest),
  });
  bom.metadata.component = image;
  for (const b of subject.bases) {
    image.components.add(new Models.Component(Enums.ComponentType.Container, b.name, { bomRef: `base:${ociPurl(b.name, b.digest)}`, version: b.digest, purl: ociPurl(b.name, b.digest) }));
  }
  const seen = new Set<string>();
  for (const p of scan.packages) {
    let ref = p.purl;
    if (seen.has(ref)) ref = `${p.purl}#${p.foundIn}`;
    seen.add(ref);
    bom.components.add(component(p, ref));
  }
  const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot5));
  return serializer.serialize(bom, { sortLists: true, space: 2 });
}

function component(p: FoundPackage, bomRef: string): Models.Component {
  const licenses = new Models.LicenseRepository(
    p.licenses.map((l) => {
      const id = spdxLicenseId(l) ?? l;
      return SPDX.isSupportedSpdxId(id) ? new Models.SpdxLicense(id) : new Models.NamedLicense(l);
    }),
  );
  const props = [new Models.Property("mstage:package:foundIn", p.foundIn)];
  if (p.arch) props.push(new Models.Property("mstage:package:architecture", p.arch));
  if (p.sourceName) props.push(new Models.Property("mstage:package:source", p.sourceName));
  for (const f of p.files) props.push(new Models.Property("mstage:package:file", f));
  return new Models.Component(p.kind === "golang" && p.name === "stdlib" ? Enums.ComponentType.Framework : Enums.ComponentType.Library, p.name, {
    bomRef,
    version: p.version || undefined,
    purl: p.purl,
    licenses,
    properties: new Models.PropertyRepository(props),
  });
}

/** A version-4-shaped UUID made from the image digest: the same image, the same serial number. */
function uuidUrn(seed: string): string {
  const h = createHash("sha256").update(`mstage-cyclonedx\n${seed}`).digest("hex");
  const v = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  return `urn:uuid:${v}`;
}
