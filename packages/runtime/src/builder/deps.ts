// The builder's view of its sibling modules, in one place: the store, layers and the sandbox.
export { Store } from "../store/store.ts";
export type { LayerRef, StageResult } from "../store/results.ts";
export { CorruptLayerError, applyLayer } from "../layer/apply.ts";
export { ensureLayerExtracted, importTarLayer } from "../layer/extract.ts";
export { commitLayerToStore } from "../layer/commit.ts";
export { commitAndAdopt, makeLayerDurable } from "../layer/adopt.ts";
export { holdScratch, withRootfs } from "../sandbox/overlay.ts";
export { runStep } from "../sandbox/run.ts";
