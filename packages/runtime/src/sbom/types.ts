// What a scan of an image's filesystem finds: the packages and the files they own. Documents
// (SPDX, CycloneDX, the table) are made from this one model, which is also what the scan cache keeps.

export type PackageKind = "deb" | "apk" | "golang" | "npm";

export interface FoundFile {
  /** Absolute path in the image. */
  path: string;
  sha1: string;
  sha256: string;
}

export interface FoundPackage {
  kind: PackageKind;
  name: string;
  version: string;
  arch?: string;
  /** Licenses as the package states them (Debian short names, SPDX ids, npm's `license`). */
  licenses: string[];
  purl: string;
  /** Paths of the regular files the package owns (dpkg/apk lists, a package's own dir for npm). */
  files: string[];
  /** Where it was found: the dpkg/apk database, the Go binary, the package.json. */
  foundIn: string;
  /** Debian's source package, Go's module sum, … */
  sourceName?: string;
  checksum?: string;
}

export interface ImageScan {
  /** Bumped when what a scan finds changes: older cached scans are redone. */
  version: number;
  /** From etc/os-release: e.g. { id: "debian", versionId: "12" }. */
  distro?: { id: string; versionId?: string; name?: string };
  packages: FoundPackage[];
  /** Every file some package owns, with its checksums, sorted by path. */
  files: FoundFile[];
}

export const SCAN_VERSION = 2;
