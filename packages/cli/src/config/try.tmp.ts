import { loadConfig } from "./load.ts";
const t0 = performance.now();
const c = await loadConfig(process.argv[2]);
console.log(performance.now() - t0, c.stages.map((s) => s.name), c.targets.map((s) => s.name), c.dependencies);
