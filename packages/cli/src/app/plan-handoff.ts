// What the invoking `up` hands to the one it re-executes in the user namespace: the digests of the
// local sources its no-op check hashed, so the second plan of the same build does not walk and
// stat every file again (for 200 000 files that walk is seconds). Taken only for the same
// images.ts; anything unreadable is ignored and the child hashes for itself.
import { resolve } from "node:path";
import type { LocalDigest } from "@mstage/core";

const VERSION = 1;

interface HandOff {
  version: number;
  file: string;
  locals: Array<[string, LocalDigest]>;
}

/** The hand-off text for a plan of `file` that hashed `locals`; undefined when there is nothing to hand over. */
export function encodePlanHandOff(file: string, locals: ReadonlyMap<string, LocalDigest>): string | undefined {
  if (locals.size === 0) return undefined;
  return JSON.stringify({ version: VERSION, file: resolve(file), locals: [...locals] } satisfies HandOff);
}

/** The local digests a hand-off carries for `file`, or undefined (none, another config, another version, garbage). */
export function decodePlanHandOff(text: string | undefined, file: string): Map<string, LocalDigest> | undefined {
  if (!text) return undefined;
  let h: HandOff;
  try {
    h = JSON.parse(text) as HandOff;
  } catch {
    return undefined;
  }
  if (h?.version !== VERSION || h.file !== resolve(file) || !Array.isArray(h.locals)) return undefined;
  const out = new Map<string, LocalDigest>();
  for (const e of h.locals) {
    if (!Array.isArray(e) || typeof e[0] !== "string" || typeof e[1]?.digest !== "string" || typeof e[1]?.files !== "string") return undefined;
    out.set(e[0], { digest: e[1].digest, files: e[1].files });
  }
  return out;
}
