// @mstage/runtime: store, sandbox, layers, OCI layout, registry client and builder.
// Each area adds its own export lines here; keep them grouped by folder.

// oci/
export { parseDigest, isDigest, digestHex, sha256Digest, digestOf } from "./oci/digest.ts";
export type { Digest } from "./oci/digest.ts";
export { MediaType, Annotation, isImageManifestType, isIndexType, isGzipLayerType } from "./oci/types.ts";
export type {
  Descriptor,
  ImageManifest,
  ImageIndex,
  ImageConfig,
  ContainerConfig,
  HistoryEntry,
  Platform as OciPlatform,
} from "./oci/types.ts";
export { canonicalBlob } from "./oci/canonical.ts";
export {
  DEFAULT_PATH,
  emptyImageConfig,
  applyStageConfig,
  addLayer,
  squashLayers,
  createdTimestamp,
  sourceDateEpochFrom,
  stageHistoryEntry,
  runEnv,
  normalisePort,
} from "./oci/config.ts";
export type { StageConfigFields, ConfigPhase } from "./oci/config.ts";
export type { OciBlobStore, LayerCompressor } from "./oci/blobs.ts";
export { gzipBlob } from "./oci/gzip.ts";
export { buildImage, buildIndex, imageBlobs, imageSize, isBuiltIndex } from "./oci/manifest.ts";
export type { ImageInput, BuiltImage, BuiltIndex, BuiltOutput } from "./oci/manifest.ts";
export { writeOciLayout, layoutIndex } from "./oci/layout.ts";
export type { OutputImage, WriteLayoutOptions } from "./oci/layout.ts";
export { writeDockerArchive, repoTag } from "./oci/docker-archive.ts";
export type { DockerArchiveManifestEntry, WriteArchiveOptions } from "./oci/docker-archive.ts";

// builder/
export { runGraph } from "./builder/scheduler.ts";
export type { Task } from "./builder/scheduler.ts";
export { LineSplitter } from "./builder/events.ts";
export type { BuildEvent, BuildEventHandler, StageOutcome } from "./builder/events.ts";
export { buildPlan, finalConfig, storeFullError } from "./builder/builder.ts";
export type { BuildOptions, BuiltStage } from "./builder/builder.ts";
export { BaseProvider } from "./builder/bases.ts";
export type { BaseProviderOptions, PreparedBase } from "./builder/bases.ts";
export { buildDebianRootfs, parseDpkgStatus } from "./builder/debian.ts";
export { openShell } from "./builder/shell.ts";
export type { ShellOptions } from "./builder/shell.ts";

// registry/
export { parseReference, formatReference, referenceName, isLoopbackHost } from "./registry/reference.ts";
export type { Reference } from "./registry/reference.ts";
export { RegistryClient, redact } from "./registry/client.ts";
export type { RegistryClientOptions } from "./registry/client.ts";
export { fileCredentials } from "./registry/credentials.ts";
export type { Credentials, CredentialSource } from "./registry/credentials.ts";
export { pullImage, resolveDigest } from "./registry/pull.ts";
export { resolveGitRef, checkoutGit } from "./builder/git.ts";
export { downloadDigest } from "./builder/download.ts";
export type { BlobSink, PulledImage, PulledLayer, PullOptions, PullProgress } from "./registry/pull.ts";
export type { TransferProgress } from "./registry/transfer.ts";
export { loadRegistriesConf, parseRegistriesConf, pullEndpoints } from "./registry/registries.ts";
export type { RegistriesConf, RegistryEntry, Mirror, Endpoint } from "./registry/registries.ts";
export { pushImage } from "./registry/push.ts";
export type { BlobSource, PushBlob, PushOptions, PushProgress, PushResult } from "./registry/push.ts";
export { pushImages } from "./registry/push-images.ts";
export type { PushTarget, PushedTag, PushImagesOptions } from "./registry/push-images.ts";
export { RegistryCache, parseCacheRef } from "./registry/cache.ts";
export type { RegistryCacheOptions } from "./registry/cache.ts";

// sandbox/
export { reexecInUserNamespace, inUserNamespace, userNamespaceKind, takeHandOff } from "./sandbox/userns.ts";
export type { ReexecOptions } from "./sandbox/userns.ts";
export { planIdMapping, addRangeCommand } from "./sandbox/subid.ts";
export type { IdMapping, IdRange } from "./sandbox/subid.ts";
export { withRootfs } from "./sandbox/overlay.ts";
export type { RootfsOptions } from "./sandbox/overlay.ts";
export { runStep } from "./sandbox/run.ts";
export { prepareStepHelpers } from "./sandbox/devices.ts";
export type { RunStepOptions, StepResult, StepBind, StepCache, StepSecret } from "./sandbox/run.ts";
export { resolveInRoot, hostPathInRoot, mkdirInRoot } from "./sandbox/paths.ts";
export { runDoctorChecks } from "./sandbox/doctor.ts";
export { foreignRunProblem, runsNatively } from "./sandbox/binfmt.ts";
export type { DoctorCheck } from "./sandbox/doctor.ts";

// store/
export { Store } from "./store/store.ts";
export type { WriteBlobOptions } from "./store/store.ts";
export type { StageResult, LayerRef } from "./store/results.ts";
export type { StoreLock, LockMode, LockOptions } from "./store/store-lock.ts";
export { parseByteSize } from "./store/gc.ts";
export type { ResultInfo, GcOptions, GcReport } from "./store/gc.ts";
export type { VerifyReport, LayerChecker } from "./store/verify.ts";
export { layerMatchesTar } from "./layer/verify.ts";

// layer/
export { applyLayer } from "./layer/apply.ts";
export type { ApplyOptions } from "./layer/apply.ts";
export { commitLayer, commitLayerToStore, digestLayer, ensureLayerTar } from "./layer/commit.ts";
export { commitAndAdopt } from "./layer/adopt.ts";
export type { CommitOptions } from "./layer/commit.ts";
export { compressLayer } from "./layer/compress.ts";

// sbom/
export { attestImage, scanImage, cachedScan, scanKey, cyclonedxDocument, CYCLONEDX_MEDIA_TYPE } from "./sbom/attest.ts";
export type { AttestOptions, SbomFormat } from "./sbom/attest.ts";
export { ATTESTATION_ANNOTATION, EMPTY_CONFIG_MEDIA_TYPE } from "./sbom/artifact.ts";
export type { Artifact, AttestationKind } from "./sbom/artifact.ts";
export { spdxDocument, SPDX_MEDIA_TYPE } from "./sbom/spdx.ts";
export { provenanceStatement, IN_TOTO_MEDIA_TYPE, SLSA_PROVENANCE_V1 } from "./sbom/provenance.ts";
export type { ProvenanceInput, ResourceDescriptor } from "./sbom/provenance.ts";
export type { AttestationSubject } from "./sbom/subject.ts";
export { listReferrers, pushReferrers } from "./sbom/push.ts";
export { pullCachedScan, pushCachedScan, SCAN_MEDIA_TYPE } from "./sbom/cache-scan.ts";
export type { PushedReferrers } from "./sbom/push.ts";
export { readGoBuildInfo, parseModInfo } from "./sbom/gobuildinfo.ts";
export type { GoBuildInfo, GoModule } from "./sbom/gobuildinfo.ts";
export type { ImageScan, FoundPackage, FoundFile } from "./sbom/types.ts";
