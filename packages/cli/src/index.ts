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
  dockerfile,
  stacker,
} from "@mstage/core";
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
  ImageOptions,
  DebianOptions,
  DockerfileOptions,
  StackerOptions,
} from "@mstage/core";
