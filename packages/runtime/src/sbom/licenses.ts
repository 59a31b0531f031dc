// Debian's short license names (DEP-5) as SPDX license ids, for the names that have one; the rest
// stay as the package wrote them and become `LicenseRef-` entries in SPDX and names in CycloneDX.
const DEBIAN_TO_SPDX: Record<string, string> = {
  "GPL-1": "GPL-1.0-only", "GPL-1+": "GPL-1.0-or-later",
  "GPL-2": "GPL-2.0-only", "GPL-2+": "GPL-2.0-or-later",
  "GPL-3": "GPL-3.0-only", "GPL-3+": "GPL-3.0-or-later",
  "LGPL-2": "LGPL-2.0-only", "LGPL-2+": "LGPL-2.0-or-later",
  "LGPL-2.1": "LGPL-2.1-only", "LGPL-2.1+": "LGPL-2.1-or-later",
  "LGPL-3": "LGPL-3.0-only", "LGPL-3+": "LGPL-3.0-or-later",
  "AGPL-3": "AGPL-3.0-only", "AGPL-3+": "AGPL-3.0-or-later",
  "GFDL-1.2": "GFDL-1.2-only", "GFDL-1.2+": "GFDL-1.2-or-later",
  "GFDL-1.3": "GFDL-1.3-only", "GFDL-1.3+": "GFDL-1.3-or-later",
  "Apache-2.0": "Apache-2.0", "Apache-2": "Apache-2.0",
  "Expat": "MIT", "MIT": "MIT", "ISC": "ISC", "Zlib": "Zlib", "zlib": "Zlib",
  "BSD-2-clause": "BSD-2-Clause", "BSD-2-Clause": "BSD-2-Clause",
  "BSD-3-clause": "BSD-3-Clause", "BSD-3-Clause": "BSD-3-Clause",
  "BSD-4-clause": "BSD-4-Clause", "BSD-4-Clause": "BSD-4-Clause",
  "MPL-1.1": "MPL-1.1", "MPL-2.0": "MPL-2.0", "CC0-1.0": "CC0-1.0", "CC0": "CC0-1.0",
  "Artistic-2.0": "Artistic-2.0", "PSF-2": "PSF-2.0", "Unicode-DFS-2016": "Unicode-DFS-2016",
  "curl": "curl", "OpenSSL": "OpenSSL", "X11": "X11", "BSL-1.0": "BSL-1.0", "WTFPL": "WTFPL",
};

const SPDX_ID = /^[A-Za-z0-9][A-Za-z0-9.+-]*$/;

/** A stated license as an SPDX id, or undefined when there is none to map it to. */
export function spdxLicenseId(name: string): string | undefined {
  const mapped = DEBIAN_TO_SPDX[name];
  if (mapped) return mapped;
  // npm's and apk's fields are usually SPDX already; ids of the SPDX list look like this.
  return /^(MIT|ISC|Apache-2\.0|BSD-[234]-Clause|[AL]?GPL-[123]\.[01]-(only|or-later)|MPL-2\.0|0BSD|Unlicense|CC0-1\.0|BlueOak-1\.0\.0|Zlib|Python-2\.0)$/.test(name) && SPDX_ID.test(name)
    ? name
    : undefined;
}

/** A `LicenseRef-` idstring for a name SPDX has no id for: letters, digits, "." and "-" only. */
export function licenseRef(name: string): string {
  return `LicenseRef-${name.replace(/[^A-Za-z0-9.-]+/g, "-").replace(/^-+|-+$/g, "") || "unknown"}`;
}
