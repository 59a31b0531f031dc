// Stage keys (DESIGN §3). The layer key is a sha256 over a canonical encoding of everything that can
// change the stage's layer; the config key adds the image-config-only fields. Names, host paths
// and other things that cannot change the bytes are recorded in the inputs (for plan's reasons)
// but left out of the keys, so keys match across machines and project directories.
import { canonicalJson, sha256Hex } from "./canonical.ts";

/** Bumped when the layer format or the key encoding changes: every stage rebuilds once. */
export const LAYER_FORMAT = 2;

export type BaseInput =
  | { kind: "scratch" }
  /** identity: the pinned manifest digest; undefined while the tag is not resolved yet. */
  | { kind: "image"; ref: string; platform?: string; identity?: string }
  | { kind: "stage"; stage: string; key: string; user?: string }
  | { kind: "oci"; layout: string; ref?: string; identity: string }
  | { kind: "tarball"; source: SourceInput }
  | { kind: "debian"; suite: string; packages: string[]; mirror?: string; variant?: string; identity: string };

export type SourceInput =
  | { kind: "local"; path: string; exclude: string[]; digest: string }
  | { kind: "stage-path"; stage: string; key: string; path: string }
  | { kind: "archive"; source: SourceInput }
  /** digest: the config's sha256, or the one images.lock pins for an unpinned URL (undefined: not downloaded yet). */
  | { kind: "http"; url: string; digest?: string; unpinned?: true }
  /** commit: what `ref` resolved to (pinned in images.lock); undefined while not resolved yet. */
  | { kind: "git"; url: string; ref: string; commit?: string; keepGitDir: boolean }
  | { kind: "inline"; digest: string };

export interface CopyInput {
  dest: string;
  source: SourceInput;
  mode?: number;
  owner?: string;
}

export interface BindInput {
  target: string;
  host: string;
  readonly: boolean;
  /** Content digest of a read-only bind; writable binds are never cached. */
  digest?: string;
}

export interface ConfigInputs {
  user?: string;
  entrypoint?: string[];
  cmd?: string[];
  expose: string[];
  healthcheck?: import("./model.ts").Healthcheck;
  onBuild?: string[];
  labels: Record<string, string>;
  /** The stage (and its key) whose directory's files are labels. */
  labelsFrom?: { stage: string; key: string; path: string };
  volumes: string[];
  stopSignal?: string;
  annotations: Record<string, string>;
  squash: boolean;
  /** Absent unless the stage sets it, so keys of stages without it stay as they were. */
  compression?: "gzip" | "zstd";
  tags: string[];
  /**
   * The config key of the stage this one starts from: an image inherits cmd, labels, user… from
   * its base, so an upstream config-only change is a config change here too.
   */
  base?: string;
}

/** A JSON-able record of everything that went into a stage's keys. */
export interface StageInputs {
  format: number;
  platform: string;
  base: BaseInput;
  copy: CopyInput[];
  run: string[];
  shell: string[];
  env: Record<string, string>;
  workdir?: string;
  runAs?: string;
  network: "host" | "none";
  binds: BindInput[];
  /** tmpfs targets of `run`; absent when there are none. */
  tmpfs?: string[];
  config: ConfigInputs;
  /** Where a frontend's step came from (Dockerfile line, build args). For reasons only. */
  origin?: { file: string; line: number; instruction: string; args?: Record<string, string> };
  /**
   * Per local source (by its display path): its entries' fingerprints, one line per entry, each
   * `"rel","fingerprint"` (two JSON strings). For reasons only. One string rather than an object of
   * 200 000 keys: the state of a large tree parses in a fraction of the memory. States written
   * before hold an object rel → fingerprint, which reasons still read.
   */
  files: Record<string, string | Record<string, string>>;
}

/** The part of the inputs the layer key covers. */
export function layerKeyMaterial(i: StageInputs): unknown {
  return {
    format: i.format,
    platform: i.platform,
    base: baseMaterial(i.base),
    copy: i.copy.map((c) => ({ dest: c.dest, source: sourceMaterial(c.source), mode: c.mode, owner: c.owner })),
    run: i.run,
    shell: i.shell,
    env: i.env,
    workdir: i.workdir,
    runAs: i.runAs,
    network: i.network,
    binds: i.binds.map((b) => ({ target: b.target, readonly: b.readonly, digest: b.digest })),
    tmpfs: i.tmpfs,
  };
}

function baseMaterial(b: BaseInput): unknown {
  switch (b.kind) {
    case "scratch":
      return b;
    case "image":
      return { kind: b.kind, identity: b.identity ?? `unresolved:${b.ref}`, platform: b.platform };
    case "stage":
      return { kind: b.kind, key: b.key, user: b.user };
    case "oci":
    case "debian":
      return { kind: b.kind, identity: b.identity };
    case "tarball":
      return { kind: b.kind, source: sourceMaterial(b.source) };
  }
}

function sourceMaterial(s: SourceInput): unknown {
  switch (s.kind) {
    case "local":
    case "inline":
      return { kind: s.kind, digest: s.digest };
    case "stage-path":
      return { kind: s.kind, key: s.key, path: s.path };
    case "archive":
      return { kind: s.kind, source: sourceMaterial(s.source) };
    case "http":
      return { kind: s.kind, url: s.url, digest: s.digest ?? `unresolved:${s.url}` };
    case "git":
      return { kind: s.kind, url: s.url, commit: s.commit ?? `unresolved:${s.ref}`, keepGitDir: s.keepGitDir };
  }
}

export function layerKey(i: StageInputs): string {
  return sha256Hex(canonicalJson(layerKeyMaterial(i)));
}

export function configKey(layer: string, i: StageInputs): string {
  return sha256Hex(canonicalJson({ layer, config: i.config }));
}
