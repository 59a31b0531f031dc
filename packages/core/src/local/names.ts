// File names that are not UTF-8. Node reads one with U+FFFD in place of each byte it cannot decode,
// a name no lstat then finds: a walk would take it for a file removed meanwhile and leave it out.
import { readdirSync } from "node:fs";

/**
 * The name in `dir` that Node reads as `decoded` and that is not UTF-8, shown with its bytes outside
 * printable ASCII escaped (`f\xffo`); undefined when there is none (then it really was removed).
 * Without `decoded`, the first such name.
 */
export function nonUtf8Name(dir: string, decoded?: string): string | undefined {
  for (const raw of readdirSync(dir, { encoding: "buffer" })) {
    const name = raw.toString("utf8");
    if ((decoded === undefined || name === decoded) && !Buffer.from(name, "utf8").equals(raw)) return shownBytes(raw);
  }
  return undefined;
}

function shownBytes(raw: Buffer): string {
  return [...raw].map((b) => (b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`)).join("");
}
