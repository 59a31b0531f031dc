// The OCI image-spec value types mstage reads and writes: descriptors, manifests, indexes and the
// image config. Field names follow the JSON on the wire, so a parsed document is usable as is.
import type { Digest } from "./digest.ts";

export const MediaType = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  /** Docker's v2 schema 2 types: read from registries and layouts, never written. */
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

export type MediaTypeName = (typeof MediaType)[keyof typeof MediaType];

/** Manifest media types that describe one image. */
export function isImageManifestType(mt: string | undefined): boolean {
  return mt === MediaType.ociManifest || mt === MediaType.dockerManifest;
}

/** Manifest media types that list images per platform. */
export function isIndexType(mt: string | undefined): boolean {
  return mt === MediaType.ociIndex || mt === MediaType.dockerManifestList;
}

/** Layer media types whose blob is gzip-compressed. */
export function isGzipLayerType(mt: string): boolean {
  return (
    mt === MediaType.ociLayerGzip ||
    mt === MediaType.dockerLayerGzip ||
    mt === MediaType.dockerForeignLayerGzip
  );
}

/** How a layer of media type `mt` is compressed, as the store records it; undefined for a plain tar. */
export function layerCompressionOf(mt: string): "gzip" | "zstd" | undefined {
  if (isGzipLayerType(mt) || mt === "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip") return "gzip";
  if (mt === MediaType.ociLayerZstd) return "zstd";
  return undefined;
}

/** The OCI media type mstage writes for a layer compressed as `c`. */
export function layerMediaType(c: "gzip" | "zstd"): string {
  return c === "zstd" ? MediaType.ociLayerZstd : MediaType.ociLayerGzip;
}

/** The annotation keys mstage fills. */
export const Annotation = {
  created: "org.opencontainers.image.created",
  refName: "org.opencontainers.image.ref.name",
  baseName: "org.opencontainers.image.base.name",
  baseDigest: "org.opencontainers.image.base.digest",
} as const;

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/**
 * The runtime part of an image config (the JSON object under "config"). Docker's capitalised keys;
 * maps whose values carry no information (`ExposedPorts`, `Volumes`) hold empty objects.
 */
export interface ContainerConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Volumes?: Record<string, Record<string, never>>;
  Labels?: Record<string, string>;
  StopSignal?: string;
  /** Docker-only keys (Healthcheck, OnBuild, Shell, ArgsEscaped…) from pulled bases are kept as they are. */
  [dockerOnly: string]: unknown;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The whole image config JSON (application/vnd.oci.image.config.v1+json). */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
  config?: ContainerConfig;
  rootfs: { type: "layers"; diff_ids: Digest[] };
  history?: HistoryEntry[];
}

/** The `oci-layout` file of an image layout. */
export interface OciLayoutFile {
  imageLayoutVersion: "1.0.0";
}
