// Brands mark the objects the API made, so validation can tell them from look-alike plain objects,
// across two loaded copies of the package (Symbol.for is process-wide).
import type { Base, Source } from "../model.ts";

export const BASE_BRAND: unique symbol = Symbol.for("mstage.base") as never;
export const SOURCE_BRAND: unique symbol = Symbol.for("mstage.source") as never;

/** Adds a non-enumerable brand and freezes: the object stays clean JSON. */
export function branded<T extends object>(brand: symbol, value: T): T {
  Object.defineProperty(value, brand, { value: true, enumerable: false });
  return Object.freeze(value);
}

export function isBase(x: unknown): x is Base {
  return typeof x === "object" && x !== null && (x as Record<symbol, unknown>)[BASE_BRAND] === true;
}

export function isSource(x: unknown): x is Source {
  return typeof x === "object" && x !== null && (x as Record<symbol, unknown>)[SOURCE_BRAND] === true;
}

/** A short description of a value for "wrong type" messages: `a number (3)`, `an array`. */
export function describe(x: unknown): string {
  if (x === null) return "null";
  if (Array.isArray(x)) return "an array";
  switch (typeof x) {
    case "string":
      return `a string (${JSON.stringify(x.length > 40 ? x.slice(0, 40) + "…" : x)})`;
    case "number":
      return `a number (${x})`;
    case "boolean":
      return `a boolean (${x})`;
    case "undefined":
      return "undefined";
    case "function":
      return "a function";
    default:
      return "an object";
  }
}
