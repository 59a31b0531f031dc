// Canonical JSON and sha256: what every stage key, config key and manifest digest is made of.
// Object keys sorted by code unit, no whitespace, undefined members dropped, and values that have
// no stable encoding (NaN, Dates, class instances, functions) refused rather than guessed at: the
// same value always gives the same bytes, on any machine.
import { createHash } from "node:crypto";

export function canonicalJson(value: unknown): string {
  return encode(value, "$");
}

/** Whether two values encode alike; a missing value (undefined) equals null, as in an array. */
export function sameCanonical(a: unknown, b: unknown): boolean {
  return encode([a], "$") === encode([b], "$");
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
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
