// @mstage/core: the images.ts API, the stage graph, validation, keys and plan.
export { UserError, StageError, StepError, RegistryError } from "./errors.ts";
export type { SourceLocation } from "./errors.ts";
export { isStage, STAGE_BRAND } from "./model.ts";
export type {
  Stage,
  StageSpec,
  Base,
  Source,
  FileOptions,
  LocalSource,
  StagePathSource,
  InlineSource,
  ScratchBase,
  ImageBase,
  StageBase,
  OciBase,
  TarballBase,
  DebianBase,
  Bind,
  SecretSource,
} from "./model.ts";
export { stage, image, scratch, oci, tarball, debian, local, inline } from "./api/index.ts";
export type { StageOptions, LocalOptions, ImageOptions, DebianOptions } from "./api/index.ts";
