// Alpine packages from `lib/apk/db/installed`: one paragraph per package, one letter per field
// (P name, V version, A arch, L license, o origin, C checksum, F directory, R file in it).

export interface ApkEntry {
  name: string;
  version: string;
  arch?: string;
  license?: string;
  origin?: string;
  checksum?: string;
  files: string[];
}

export function parseApkInstalled(text: string): ApkEntry[] {
  const out: ApkEntry[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    let e: Partial<ApkEntry> & { files: string[] } = { files: [] };
    let dir = "";
    for (const line of para.split("\n")) {
      if (line.length < 2 || line[1] !== ":") continue;
      const v = line.slice(2);
      switch (line[0]) {
        case "P": e.name = v; break;
        case "V": e.version = v; break;
        case "A": e.arch = v; break;
        case "L": e.license = v; break;
        case "o": e.origin = v; break;
        case "C": e.checksum = v; break;
        case "F": dir = v; break;
        case "R": e.files.push(`/${dir ? `${dir}/` : ""}${v}`); break;
      }
    }
    if (e.name && e.version) out.push(e as ApkEntry);
    e = { files: [] };
  }
  return out;
}
