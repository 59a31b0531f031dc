// The public `mstage` package: the images.ts API and its types, nothing internal.
export {
  stage,
  stageFor,
  image,
  scratch,
  oci,
  tarball,
  debian,
  local,
  inline,
  archive,
  http,
  git,
} from "@mstage/core";
export { dockerfile, stacker } from "@mstage/core/frontends";
export type {
  Stage,
  StageOptions,
  StageSpecFunction,
  TargetPlatform,
  HealthcheckOptions,
  Base,
  Source,
  FileOptions,
  LocalOptions,
  HttpOptions,
  GitOptions,
  ImageOptions,
  BaseWithPaths,
  DebianOptions,
  DockerfileOptions,
  StackerOptions,
} from "@mstage/core";
