// Debian packages from the dpkg database: `var/lib/dpkg/status` (and `status.d/`, one file per
// package, as distroless images keep them), their file lists from `info/<pkg>[:<arch>].list` and
// their licenses from the machine-readable `usr/share/doc/<pkg>/copyright`.

export interface DpkgEntry {
  name: string;
  version: string;
  arch: string;
  source?: string;
}

/** The installed packages of a status file (or of one status.d file). */
export function parseStatus(text: string, requireInstalled = true): DpkgEntry[] {
  const out: DpkgEntry[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let lastKey = "";
    for (const line of para.split("\n")) {
      if (/^\s/.test(line)) continue; // a continuation line (Description, Conffiles)
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      lastKey = line.slice(0, colon).toLowerCase();
      fields.set(lastKey, line.slice(colon + 1).trim());
    }
    const name = fields.get("package");
    const version = fields.get("version");
    const status = fields.get("status");
    if (!name || !version) continue;
    if (requireInstalled && !(status ?? "").endsWith(" installed")) continue;
    // "Source: glibc (2.36-9)" names the source package and, when it differs, its version.
    const source = fields.get("source")?.split(" ")[0];
    out.push({ name, version, arch: fields.get("architecture") ?? "all", ...(source ? { source } : {}) });
  }
  return out;
}

/** The paths a `.list` file names (directories included; the caller keeps the regular files). */
export function parseFileList(text: string): string[] {
  return text.split("\n").filter((l) => l.startsWith("/") && l !== "/.");
}

/**
 * License names of a DEP-5 copyright file: the `License:` field of each paragraph, first line only.
 * A free-form copyright file states no machine-readable license: none are returned.
 */
export function parseCopyright(text: string): string[] {
  if (!/^Format:\s*\S/m.test(text.split(/\n\s*\n/)[0] ?? "")) return [];
  const seen = new Set<string>();
  for (const m of text.matchAll(/^License:[ \t]*(\S[^\n]*)$/gm)) {
    const name = m[1]!.trim();
    if (name) seen.add(name);
  }
  return [...seen];
}
