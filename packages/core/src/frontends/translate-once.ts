// What both frontends do with each stage of their file (a Dockerfile stage, a stacker layer):
// translate it when something first reads it, only once, and refuse one that depends on itself.

/** A stage of a frontend's file, with its translation once made. */
export interface Translated<R> {
  result?: R;
  /** Set while its translation runs: reading it then is a cycle. */
  translating?: boolean;
}

/** `node`'s translation: made by `translate` the first time, or `cycle()` when it is being made. */
export function translateOnce<R>(node: Translated<R>, translate: () => R, cycle: () => never): R {
  if (node.result !== undefined) return node.result;
  if (node.translating) cycle();
  node.translating = true;
  node.result = translate();
  node.translating = false;
  return node.result;
}
