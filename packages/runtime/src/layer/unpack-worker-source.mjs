// unpack-worker run from the TypeScript sources (unit tests under tsx): a worker thread does not get
// the loader that `--import tsx` gave its parent, so it registers tsx itself before loading the
// worker. The bundle never loads this file; it starts dist/unpack-worker.mjs instead.
import { register } from "tsx/esm/api";

register();
await import("./unpack-worker.ts");
