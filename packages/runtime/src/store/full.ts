// A full disk or quota met while writing into the store, the same words wherever it is met (a
// stage's step or commit, an extraction, a compression for an output).
import { findCause, type SystemError } from "@mstage/core";

export const NO_SPACE_ADVICE = "free some (mstage gc --max-size …) or use a --store with room, then run again";

/** The ENOSPC or EDQUOT along `e`'s cause chain, or undefined when `e` is something else. */
export function noSpaceCause(e: unknown): SystemError | undefined {
  return findCause(e, (c) => c.code === "ENOSPC" || c.code === "EDQUOT");
}
