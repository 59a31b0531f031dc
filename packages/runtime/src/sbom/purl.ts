// Package URLs (github.com/package-url/purl-spec): type, namespace, name, version, qualifiers,
// each part percent-encoded; qualifiers sorted by key.

export function purl(type: string, namespace: string | undefined, name: string, version: string | undefined, qualifiers: Record<string, string | undefined> = {}): string {
  const ns = namespace ? `${namespace.split("/").map(enc).join("/")}/` : "";
  const q = Object.entries(qualifiers)
    .filter((kv): kv is [string, string] => kv[1] !== undefined && kv[1] !== "")
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${enc(v)}`)
    .join("&");
  return `pkg:${type}/${ns}${enc(name)}${version ? `@${enc(version)}` : ""}${q ? `?${q}` : ""}`;
}

function enc(s: string): string {
  return encodeURIComponent(s);
}
