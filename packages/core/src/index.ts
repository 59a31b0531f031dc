// @mstage/core: the images.ts API, the stage graph, validation, keys and plan.
export { UserError, StageError, StepError, RegistryError, InvalidReferenceError, DigestMismatchError, HostileLayerError, isUserError, formatLocation, findCause } from "./errors.ts";
export type { SourceLocation, SystemError } from "./errors.ts";
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
  ArchiveSource,
  HttpSource,
  GitSource,
  ScratchBase,
  ImageBase,
  StageBase,
  OciBase,
  TarballBase,
  DebianBase,
  Bind,
  StageBind,
  SecretSource,
  StageOrigin,
  Healthcheck,
  TargetPlatform,
} from "./model.ts";
export { stage, stageFor, image, scratch, oci, tarball, debian, local, inline, archive, http, git } from "./api/index.ts";
export type { StageOptions, StageSpecFunction, HealthcheckOptions, HttpOptions, GitOptions, LocalOptions, ImageOptions, DebianOptions, BaseWithPaths } from "./api/index.ts";
export { isBase, isSource, beginStageCollection } from "./api/index.ts";
// dockerfile(), stacker() and convert: "@mstage/core/frontends" (loaded only when a config calls them).
export type { DockerfileOptions, StackerOptions } from "./frontends/index.ts";
export { parseFrame } from "./api/location.ts";

// graph, local sources, keys, state and plan: used by the CLI and the builder.
export { buildGraph, stageDeps } from "./graph.ts";
export type { StageGraph } from "./graph.ts";
export { walkLocal, localPath, projectIgnore, globBase, globRegExp, isGlob } from "./local/walk.ts";
export { IgnoreRules } from "./local/ignore.ts";
export type { LocalEntry } from "./local/walk.ts";
export { nonUtf8Name } from "./local/names.ts";
export { listerChoice, listHereNow, listing, nativeLister, NUMBERS, SCAN_NUMBERS, type ListerChoice, type Listing, type NativeLister } from "./local/walk-pool.ts";
export { LAYER_FORMAT, layerKey, configKey } from "./keys.ts";
export { canonicalJson, sha256Hex } from "./canonical.ts";
export type { StageInputs, BaseInput, SourceInput, CopyInput, BindInput, ConfigInputs } from "./keys.ts";
export { planStages, planHasChanges, displayPath } from "./plan.ts";
export { parsePlatform, formatPlatform, canonicalPlatform, hostPlatform, platformMatches, selectPlatform } from "./platform.ts";
export type { Platform } from "./platform.ts";
export type { Plan, PlanEntry, PlanContext, PlanStatus } from "./plan.ts";
export type { LocalDigest } from "./local/hash.ts";
export { loadState, recordBuild, saveState, statePath } from "./state.ts";
export type { ProjectState, StageRecord } from "./state.ts";
export {
  writeFileAtomicSync,
  writeFileDurably,
  writeNewFileSynced,
  fsyncDir,
  fsyncDirAsync,
  processTag,
  processStartTime,
  tagAlive,
  tempName,
} from "./atomic-file.ts";
export { readLock, writeLock, debianLockKey, gitLockKey, lockPath } from "./images-lock.ts";
export { SourcePins } from "./source-pins.ts";
export type { SourcePinOptions } from "./source-pins.ts";
export type { LockFile } from "./images-lock.ts";
export { closest, didYouMean } from "./suggest.ts";
export { StoreLayout, STORE_DIRS, STORE_FORMAT, resultHex, readStoredResult, layerInStore, readGzipRecord, readCompressedRecord, parseGzipRecord, formatGzipRecord, LAYER_COMPRESSIONS, type LayerCompression } from "./store-layout.ts";
export type { StoredResultShape } from "./store-layout.ts";
export { SHA256_DIGEST, isSha256Digest } from "./digest.ts";
export { LockedBaseIdentity, debianIdentity, pinnedByRef } from "./base-identity.ts";
export type { BaseIdentity, ExternalBase, LockedBaseOptions } from "./base-identity.ts";
export { readOciIndex, ociBaseEntry, ociLayoutBlob, refNameOf, REF_NAME } from "./oci-layout.ts";
export type { OciIndexEntry } from "./oci-layout.ts";
