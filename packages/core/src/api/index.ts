// The images.ts API: `stage()`, the bases and the sources.
export { stage, stageFor, beginStageCollection } from "./stage.ts";
export type { StageOptions, HealthcheckOptions, StageSpecFunction } from "./stage.ts";
export { image, scratch, oci, tarball, debian } from "./bases.ts";
export type { ImageOptions, DebianOptions, BaseWithPaths } from "./bases.ts";
export { local, inline, archive, http, git } from "./sources.ts";
export type { LocalOptions, HttpOptions, GitOptions } from "./sources.ts";
export { isBase, isSource } from "./brand.ts";
