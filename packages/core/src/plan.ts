// `plan`: computes every stage's inputs and keys, then compares them with the project state and the
// store to say what would happen to each stage, and why.
import { StageError, UserError } from "./errors.ts";
import type { StageGraph } from "./graph.ts";
import type { BaseIdentity } from "./base-identity.ts";
import { sameCanonical, sha256Hex } from "./canonical.ts";
import { formatPlatform, hostPlatform } from "./platform.ts";
import {
  LAYER_FORMAT,
  configKey,
  layerKey,
  type BaseInput,
  type BindInput,
  type ConfigInputs,
  type CopyInput,
  type SourceInput,
  type StageInputs,
} from "./keys.ts";
import { hashLocal, type LocalDigest } from "./local/hash.ts";
import { StatCache } from "./local/statcache.ts";
import { projectIgnore } from "./local/walk.ts";
import type { DebianBase, ImageBase, LocalSource, OciBase, Source, Stage, StagePathSource } from "./model.ts";
import { diffInputs } from "./reasons.ts";
import type { ProjectState } from "./state.ts";
import type { SourcePins } from "./source-pins.ts";

export type PlanStatus = "new" | "rebuild" | "config" | "cached" | "unused";

export interface PlanContext extends BaseIdentity {
  /** The directory of images.ts: local paths and binds are relative to it. */
  projectDir: string;
  state: ProjectState;
  /** Whether the store holds a result for this layer key. */
  hasResult(layerKey: string): Promise<boolean>;
  /** The project's stat cache directory (in the store); without it every plan reads every file. */
  statCacheDir?: string;
  /** true: rebuild every stage; a stage name: rebuild that one. */
  noCache?: boolean | string;
  /** git() commits and unpinned http() digests (images.lock); without it those stay "not resolved yet". */
  sources?: SourcePins;
  /**
   * Digests of local sources already hashed in this run, by source id (the invoking `up`'s plan,
   * handed to the one in the user namespace): used instead of walking the source again, and
   * filled with each source this plan hashes.
   */
  localDigests?: Map<string, LocalDigest>;
}

export interface PlanEntry {
  stage: Stage;
  status: PlanStatus;
  /** Specific reasons, e.g. "local ./main.go changed", "config only: cmd, labels". */
  reasons: string[];
  /** 64 hex digits; "" for unused stages (not computed). */
  layerKey: string;
  configKey: string;
  /** What went into the keys; undefined for unused stages. */
  inputs?: StageInputs;
  /** An exported (or command-line selected) stage: written out as an image. */
  target: boolean;
}

export interface Plan {
  /** Graph order (dependencies first), then the unused stages. */
  entries: PlanEntry[];
  /** File contents read while hashing (0 on a warm no-op plan). */
  filesRead: number;
  /** The project ignore file `local()` sources honour: ".mstageignore", or ".dockerignore" when there is no .mstageignore. */
  ignoreFile?: string;
}

/** Whether a plan would change anything: the exit-code question of `--detailed-exitcode`. */
export function planHasChanges(plan: Plan): boolean {
  return plan.entries.some((e) => e.status === "new" || e.status === "rebuild" || e.status === "config" || (e.status === "cached" && e.reasons.length > 0));
}

export async function planStages(graph: StageGraph, ctx: PlanContext): Promise<Plan> {
  const cache = StatCache.open(ctx.statCacheDir);
  const hasher = new Hasher(ctx, cache);
  const targets = new Set(graph.targets);
  const entries = new Map<Stage, PlanEntry>();
  const volatile = new Set<Stage>();
  const effectiveUser = new Map<Stage, string | undefined>();
  await hasher.resolveBases(graph.order);

  for (const s of graph.order) {
    const inputs = await hasher.inputsOf(s, entries, effectiveUser);
    const lk = layerKey(inputs);
    const ck = configKey(lk, inputs);
    const prev = ctx.state.stages[s.name];
    const forced = ctx.noCache === true || ctx.noCache === s.name;
    const writable = inputs.binds.find((b) => !b.readonly);
    const unresolved = inputs.base.kind === "image" && !inputs.base.identity;
    const upstreamVolatile = graph.deps(s).find((d) => volatile.has(d));
    const inStore = await ctx.hasResult(lk);

    let status: PlanStatus;
    let reasons: string[] = [];
    const layerReasons = () => (prev ? diffInputs(prev.inputs, inputs) : []);
    if (unresolved) reasons.push(`base ${inputs.base.kind === "image" ? inputs.base.ref : ""} not resolved yet (run mstage up)`);
    const pending = unresolvedSources(inputs);
    reasons.push(...pending.map((what) => `${what} not resolved yet (run mstage up)`));
    if (writable) reasons.push(`writable bind ${writable.target} is never cached`);
    if (upstreamVolatile) reasons.push(`upstream ${upstreamVolatile.name} is always rebuilt`);
    if (forced) reasons.push("--no-cache");

    if (unresolved || pending.length || writable || upstreamVolatile || forced) {
      status = prev ? "rebuild" : "new";
      if (writable || upstreamVolatile) volatile.add(s);
    } else if (!prev) {
      status = inStore ? "cached" : "new";
      if (inStore) reasons.push("new here, result found in the store");
    } else if (!inStore) {
      // Rebuilt even when every stage built on it is cached: the builder needs each upstream
      // result to serve its dependents, and plan says what up will do.
      status = "rebuild";
      reasons = prev.layerKey === lk ? ["not in store"] : layerReasons();
      if (reasons.length === 0) reasons = ["inputs changed"];
    } else if (prev.layerKey !== lk) {
      // Changed since this project's last build, but that layer is in the store (a revert, or
      // another project built it): nothing runs, but the image differs from the one last written,
      // so it is a config-level change for up (rewrite the config and outputs), not "cached".
      status = "config";
      reasons = [...layerReasons(), "result found in the store"];
    } else if (prev.configKey !== ck) {
      status = "config";
      const upstream = s.spec.from.kind === "stage" ? s.spec.from.stage.name : "base";
      const fields = configFields(prev.inputs.config, inputs.config).map((f) => (f === "base" ? `config inherited from ${upstream}` : f));
      reasons = [`config only: ${fields.join(", ") || "config"}`];
    } else {
      status = "cached";
    }
    entries.set(s, { stage: s, status, reasons, layerKey: lk, configKey: ck, inputs, target: targets.has(s) });
  }
  const out = graph.order.map((s) => entries.get(s)!);
  for (const s of graph.unused) out.push({ stage: s, status: "unused", reasons: [], layerKey: "", configKey: "", target: false });
  return { entries: out, filesRead: cache.reads, ...(hasher.ignoreFile ? { ignoreFile: hasher.ignoreFile } : {}) };
}

function configFields(a: ConfigInputs, b: ConfigInputs): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof ConfigInputs>;
  return [...keys].filter((k) => !sameCanonical(a[k], b[k]));
}

/** Builds StageInputs; hashes each distinct local source once per plan. */
class Hasher {
  private readonly ignore;
  private readonly locals: Map<string, LocalDigest>;
  /** Each stage's external base identity, started by resolveBases. */
  private readonly resolving = new Map<Stage, Promise<string | undefined>>();
  constructor(
    private readonly ctx: PlanContext,
    private readonly cache: StatCache,
  ) {
    this.ignore = projectIgnore(ctx.projectDir);
    this.locals = ctx.localDigests ?? new Map();
  }

  get ignoreFile(): string | undefined {
    return this.ignore.file;
  }

  async inputsOf(s: Stage, done: Map<Stage, PlanEntry>, users: Map<Stage, string | undefined>): Promise<StageInputs> {
    const spec = s.spec;
    const files: StageInputs["files"] = {};
    // The graph's instances always name a concrete platform; a bare stage is the host's.
    const platform = spec.platform && spec.platform !== "host" ? spec.platform : formatPlatform(hostPlatform());
    const upstream = (d: Stage) => {
      const e = done.get(d);
      if (!e) throw new Error(`internal: stage "${d.name}" planned after "${s.name}"`);
      return e.layerKey;
    };
    // `at`: the key a pin's error names (copy["/dest"]); local errors name the bare key, as before.
    const source = async (src: Source, key: string, at = key): Promise<SourceInput> => {
      switch (src.kind) {
        case "local": {
          const d = await this.local(src, s, key);
          // Read only by reasons and by up's state: not made at all by a no-op plan.
          Object.defineProperty(files, displayPath(src.path), { get: () => d.files, enumerable: true, configurable: true });
          return { kind: "local", path: displayPath(src.path), exclude: [...src.exclude], digest: d.digest };
        }
        case "stage-path":
          return { kind: "stage-path", stage: src.stage.name, key: upstream(src.stage), path: src.path };
        case "inline":
          return { kind: "inline", digest: "sha256:" + sha256Hex(src.text) };
        case "archive":
          return { kind: "archive", source: await source(src.source, key, at) };
        case "http": {
          const digest = await this.pin(() => this.ctx.sources?.http(src), s, at);
          return { kind: "http", url: src.url, ...(digest ? { digest } : {}), ...(src.sha256 ? {} : { unpinned: true as const }) };
        }
        case "git": {
          const commit = await this.pin(() => this.ctx.sources?.git(src), s, at);
          return { kind: "git", url: src.url, ref: src.ref, ...(commit ? { commit } : {}), keepGitDir: src.keepGitDir };
        }
      }
    };

    let base: BaseInput;
    const from = spec.from;
    switch (from.kind) {
      case "scratch":
        base = { kind: "scratch" };
        break;
      case "stage":
        base = { kind: "stage", stage: from.stage.name, key: upstream(from.stage), user: users.get(from.stage) };
        break;
      case "tarball":
        base = { kind: "tarball", source: await source(from.source as LocalSource | StagePathSource, "from") };
        break;
      case "image":
        base = { kind: "image", ref: from.ref, platform: from.platform ?? platform, identity: (await this.resolve(from, s)) || undefined };
        break;
      case "oci":
        base = { kind: "oci", layout: from.layout, ref: from.ref, identity: (await this.resolve(from, s)) ?? "" };
        break;
      case "debian":
        base = { kind: "debian", suite: from.suite, packages: [...from.packages], mirror: from.mirror, variant: from.variant, identity: (await this.resolve(from, s)) ?? "" };
        break;
    }
    users.set(s, spec.user ?? (from.kind === "stage" ? users.get(from.stage) : undefined));

    const copy: CopyInput[] = [];
    for (const [dest, src] of spec.copy) copy.push({ dest, source: await source(src, "copy", `copy["${dest}"]`), mode: src.mode, owner: src.owner });
    const binds: BindInput[] = [];
    for (const b of spec.binds) {
      if (!b.readonly) {
        binds.push({ target: b.target, host: b.host, readonly: false });
        continue;
      }
      const d = await this.hash(b.host, [], false, s, "binds");
      binds.push({ target: b.target, host: b.host, readonly: true, digest: d.digest });
    }
    // A stage's path is keyed like a copy from it: that stage's key and the path.
    for (const b of spec.stageBinds) {
      const key = upstream(b.from.stage);
      binds.push({ target: b.target, host: `${b.from.stage.name}.path(${JSON.stringify(b.from.path)})`, readonly: true, digest: "sha256:" + sha256Hex(`${key}\n${b.from.path}`) });
    }
    const config: ConfigInputs = {
      user: spec.user,
      entrypoint: spec.entrypoint && [...spec.entrypoint],
      cmd: spec.cmd && [...spec.cmd],
      expose: [...spec.expose],
      healthcheck: spec.healthcheck,
      onBuild: spec.onBuild && [...spec.onBuild],
      labels: { ...spec.labels },
      ...(spec.labelsFrom ? { labelsFrom: { stage: spec.labelsFrom.stage.name, key: upstream(spec.labelsFrom.stage), path: spec.labelsFrom.path } } : {}),
      volumes: [...spec.volumes],
      stopSignal: spec.stopSignal,
      annotations: { ...spec.annotations },
      squash: spec.squash,
      ...(spec.compression !== undefined ? { compression: spec.compression } : {}),
      tags: [...spec.tags],
      base: from.kind === "stage" ? done.get(from.stage)?.configKey : undefined,
    };
    return {
      format: LAYER_FORMAT,
      platform,
      base,
      copy,
      run: [...spec.run],
      shell: [...spec.shell],
      env: { ...spec.env },
      workdir: spec.workdir,
      runAs: spec.runAs,
      network: spec.network,
      binds,
      ...(spec.tmpfs.length ? { tmpfs: [...spec.tmpfs] } : {}),
      config,
      ...(spec.origin ? { origin: { ...spec.origin, ...(spec.origin.args ? { args: { ...spec.origin.args } } : {}) } } : {}),
      files,
    };
  }

  /**
   * Starts resolving every stage's external base at once, so independent bases (a pull, a debian()
   * rootfs not pinned yet) are prepared side by side rather than one after another. Waits for all
   * of them, so a failure leaves none running; the stages then read their outcome in order.
   */
  async resolveBases(stages: readonly Stage[]): Promise<void> {
    for (const s of stages) {
      const from = s.spec.from;
      if (from.kind === "image" || from.kind === "oci" || from.kind === "debian") this.resolving.set(s, this.resolveNow(from, s));
    }
    await Promise.allSettled(this.resolving.values());
  }

  private resolve(base: ImageBase | OciBase | DebianBase, s: Stage): Promise<string | undefined> {
    return this.resolving.get(s) ?? this.resolveNow(base, s);
  }

  private async resolveNow(base: ImageBase | OciBase | DebianBase, s: Stage): Promise<string | undefined> {
    try {
      return await this.ctx.resolveBase(base, s);
    } catch (e) {
      if (e instanceof StageError || !(e instanceof UserError)) throw e;
      throw new StageError(s.name, e.message, "from", s.definedAt, { cause: e });
    }
  }

  /** A source pin; a UserError (unknown ref, unpinned URL) becomes the stage's error at `key`. */
  private async pin(fn: () => Promise<string | undefined> | undefined, s: Stage, key: string): Promise<string | undefined> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof StageError || !(e instanceof UserError)) throw e;
      throw new StageError(s.name, e.message, key, s.definedAt, { cause: e });
    }
  }

  private local(src: LocalSource, s: Stage, key: string): Promise<LocalDigest> {
    return this.hash(src.path, src.exclude, true, s, key, src.include ?? []);
  }

  /** `useIgnore`: a local() source (project ignore file, include patterns, wildcards); otherwise a bind. */
  private async hash(path: string, exclude: readonly string[], useIgnore: boolean, s: Stage, key: string, include: readonly string[] = []): Promise<LocalDigest> {
    const id = `${useIgnore}\0${path}\0${exclude.join("\0")}\0\0${include.join("\0")}`;
    let d = this.locals.get(id);
    if (!d) {
      try {
        const o = { exclude, include, projectIgnore: useIgnore ? this.ignore : undefined, glob: useIgnore };
        d = await hashLocal(path, this.ctx.projectDir, o, this.cache.source(id));
      } catch (e) {
        if (!(e instanceof UserError) || e instanceof StageError) throw e;
        throw new StageError(s.name, `local ${e.message}`, key, s.definedAt, { cause: e });
      }
      this.locals.set(id, d);
    }
    return d;
  }
}

/** The git refs and unpinned URLs of a stage's copies that have no pin yet, as plan names them. */
function unresolvedSources(i: StageInputs): string[] {
  const out: string[] = [];
  for (const c of i.copy) {
    const src = c.source.kind === "archive" ? c.source.source : c.source;
    if (src.kind === "git" && !src.commit) out.push(`git ${src.url}#${src.ref}`);
    if (src.kind === "http" && !src.digest) out.push(`http ${src.url}`);
  }
  return out;
}

/** How a local path is shown in reasons: "./main.go", "../shared", "/abs/dir". */
export function displayPath(p: string): string {
  if (p.startsWith("/") || p.startsWith("./") || p.startsWith("../") || p === "." || p === "..") return p.replace(/\/+$/, "") || "/";
  return "./" + p.replace(/\/+$/, "");
}
