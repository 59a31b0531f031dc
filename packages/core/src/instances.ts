// Per-platform stage instances: the graph builds each stage once per platform it is needed for. A
// target is built for its `platforms` (or its `platform`, or the host's); a stage it reads from
// follows the reader's platform unless it pins its own (`platform: "linux/arm64"`, or "host": the
// build machine, the cross-compiling pattern). Each instance is an ordinary Stage whose spec has a
// concrete platform and points at other instances, so the planner and the builder need not know.
import { StageError, UserError } from "./errors.ts";
import { BASE_BRAND, SOURCE_BRAND, branded, isBase, isSource } from "./api/brand.ts";
import { stageInstance } from "./api/stage.ts";
import { isStage, type Stage, type StageSpec } from "./model.ts";
import { canonicalPlatform, formatPlatform, hostPlatform } from "./platform.ts";

export interface InstanceOptions {
  /** `--platform`: restricts targets with `platforms` to these, and gives the others their platforms. */
  platforms?: string[];
  /** Default the machine's own platform. */
  host?: string;
}

/** One exported stage's images: one per platform; `index` when its ref is an image index. */
export interface StageOutput {
  stage: Stage;
  instances: Stage[];
  index: boolean;
}

interface Node {
  origin: Stage;
  /** Where its `run` executes and what its image says. */
  exec: string;
  /** What its spec function was called with. */
  target: string;
  spec: StageSpec;
  deps: Node[];
  /** Reached from a target built for a list of platforms: named with its platform. */
  multi: boolean;
  instance?: Stage;
}

/**
 * @param origins the stages the targets reach, topological (dependencies first)
 * @returns every instance in an order that keeps dependencies first, and the targets' outputs
 */
export function instantiate(origins: Stage[], targets: Stage[], o: InstanceOptions = {}): { order: Stage[]; outputs: StageOutput[] } {
  const host = o.host ?? formatPlatform(hostPlatform());
  const cli = o.platforms?.map(canonicalPlatform);
  const nodes = new Map<string, Node>();
  const byOrigin = new Map<Stage, Node[]>();

  const node = (s: Stage, platform: string, multi: boolean, neededBy?: Stage): Node => {
    const pinned = s.spec.platform;
    const exec = pinned === "host" ? host : (pinned ?? platform);
    const spec = s.specFor(pinned === "host" ? platform : exec);
    // A host stage's spec function sees the platform it is built for (its whole point); a host
    // stage without one is the same for every platform, so it is built once.
    const target = pinned === "host" && spec !== s.spec ? platform : exec;
    if (neededBy && !pinned && s.spec.platforms && !s.spec.platforms.includes(exec)) {
      throw new StageError(s.name, `is built for ${s.spec.platforms.join(", ")}, but stage "${neededBy.name}" needs it for ${exec}: add ${exec} to its platforms, or pin the reader's platform`, "platforms", s.definedAt);
    }
    const id = `${s.name}\0${exec}\0${target}`;
    let n = nodes.get(id);
    if (n) {
      n.multi ||= multi && !pinned;
      return n;
    }
    n = { origin: s, exec, target, spec, deps: [], multi: multi && pinned === undefined, instance: undefined };
    nodes.set(id, n);
    const list = byOrigin.get(s) ?? [];
    list.push(n);
    byOrigin.set(s, list);
    // What a stage reads is built for the platform the stage itself runs on.
    for (const d of specDeps(spec)) n.deps.push(node(d, exec, multi && !pinned, s));
    return n;
  };

  const outputs: { stage: Stage; nodes: Node[]; index: boolean }[] = [];
  for (const t of targets) {
    const { platform, platforms } = t.spec;
    let list: string[];
    if (platforms) list = cli ? platforms.filter((p) => cli.includes(p)) : [...platforms];
    else if (platform) list = cli && platform !== "host" ? [platform].filter((p) => cli.includes(p)) : [platform === "host" ? host : platform];
    else list = cli ?? [host];
    if (list.length === 0) {
      throw new UserError(`stage "${t.name}" is built for ${(platforms ?? [platform]).join(", ")}; --platform ${cli!.join(",")} matches none of them (leave it out, or name another stage)`);
    }
    const multi = platforms !== undefined || cli !== undefined;
    outputs.push({ stage: t, nodes: list.map((p) => node(t, p, multi)), index: platforms !== undefined || list.length > 1 });
  }

  // Names: the stage's own unless it is built for several platforms, then "name [platform]".
  const make = (n: Node): Stage => {
    if (n.instance) return n.instance;
    const deps = new Map(n.deps.map((d) => [d.origin, make(d)] as const));
    const several = n.multi || (byOrigin.get(n.origin)?.length ?? 0) > 1;
    const name = several ? `${n.origin.name} [${n.target}]` : n.origin.name;
    const spec = { ...(rewrite(n.spec, (s) => deps.get(s) ?? s) as StageSpec), platform: n.exec };
    // A debian() base is made for its stage's architecture.
    if (spec.from.kind === "debian") spec.from = branded(BASE_BRAND, { ...spec.from, platform: n.exec });
    return (n.instance = stageInstance(n.origin, name, spec));
  };
  // Definition order where the dependencies allow (a spec function may reach stages that the
  // host's spec does not: they come right before their first reader).
  const order: Stage[] = [];
  const emitted = new Set<Node>();
  const emit = (n: Node) => {
    if (emitted.has(n)) return;
    emitted.add(n);
    n.deps.forEach(emit);
    order.push(make(n));
  };
  for (const s of origins) (byOrigin.get(s) ?? []).forEach(emit);
  [...nodes.values()].forEach(emit);
  return { order, outputs: outputs.map((x) => ({ stage: x.stage, instances: x.nodes.map(make), index: x.index })) };
}

/** The stages a spec reads from: its base, its tarball's stage, its copies' and binds' stages (from first). */
export function specDeps(spec: StageSpec): Stage[] {
  const out: Stage[] = [];
  const add = (d: Stage) => {
    if (!out.includes(d)) out.push(d);
  };
  const from = spec.from;
  if (from.kind === "stage") add(from.stage);
  if (from.kind === "tarball" && from.source.kind === "stage-path") add(from.source.stage);
  for (const [, source] of spec.copy) {
    if (source.kind === "stage-path") add(source.stage);
    if (source.kind === "archive" && source.source.kind === "stage-path") add(source.source.stage);
  }
  for (const b of spec.stageBinds ?? []) add(b.from.stage);
  if (spec.labelsFrom) add(spec.labelsFrom.stage);
  return out;
}

/** A copy of a spec value with every stage reference replaced; brands survive. */
function rewrite(x: unknown, map: (s: Stage) => Stage): unknown {
  if (isStage(x)) return map(x);
  if (Array.isArray(x)) return Object.freeze(x.map((v) => rewrite(v, map)));
  if (typeof x !== "object" || x === null) return x;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(x)) out[k] = rewrite((x as Record<string, unknown>)[k], map);
  if (isBase(x)) return branded(BASE_BRAND, out);
  if (isSource(x)) return branded(SOURCE_BRAND, out);
  return Object.freeze(out);
}
