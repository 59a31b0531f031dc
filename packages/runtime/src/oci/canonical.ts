// Canonical JSON: object keys sorted by code unit, no whitespace, undefined members dropped. The same
// value always gives the same bytes, so manifests and configs get stable digests on any machine.
import { sha256Digest, type Digest } from "./digest.ts";

export function canonicalJson(value: unknown): string {
  return encode(value, "$");
}

/** The canonical encoding as UTF-8 bytes plus its digest: what gets written as a blob. */
export function canonicalBlob(value: unknown): { bytes: Buffer; digest: Digest; size: number } {
  const bytes = Buffer.from(canonicalJson(value), "utf8");
  return { bytes, digest: sha256Digest(bytes), size: bytes.length };
}

function encode(v: unknown, path: string): string {
  if (v === null) return "null";
  switch (typeof v) {
    case "string":
    case "boolean":
      return JSON.stringify(v);
    case "number":
      if (!Number.isFinite(v)) throw new TypeError(`canonical JSON: ${path} is ${v}, not a finite number`);
      return JSON.stringify(v);
    case "object": {
      if (Array.isArray(v)) {
        // JSON.stringify turns holes and undefined into null; do the same so lengths are kept.
        return "[" + v.map((x, i) => (x === undefined ? "null" : encode(x, `${path}[${i}]`))).join(",") + "]";
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError(`canonical JSON: ${path} is a ${proto?.constructor?.name ?? "object"}, not a plain object`);
      }
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return "{" + keys.map((k) => JSON.stringify(k) + ":" + encode(obj[k], `${path}.${k}`)).join(",") + "}";
    }
    default:
      throw new TypeError(`canonical JSON: ${path} is a ${typeof v}`);
  }
}
