// Why a stage's layer changed: compares the inputs recorded at its last build with today's and
// names the specific difference ("local ./main.go changed", "env CGO_ENABLED changed").
import { sameCanonical } from "./canonical.ts";
import type { BaseInput, CopyInput, SourceInput, StageInputs } from "./keys.ts";

const same = sameCanonical;
const MAX_FILES = 3;

export function diffInputs(prev: StageInputs, cur: StageInputs): string[] {
  const out = diffAll(prev, cur);
  return cur.origin ? inFrontendTerms(prev, cur, out) : out;
}

/**
 * A frontend's step says what changed in the file's own terms: a changed build arg by its name
 * ("ARG VERSION changed"), any other change of the step itself by its line ("Dockerfile:7 RUN
 * changed"). Changes of the base and of local files keep their specific reasons.
 */
function inFrontendTerms(prev: StageInputs, cur: StageInputs, reasons: string[]): string[] {
  const o = cur.origin!;
  const args = diffRecord("ARG", prev.origin?.args ?? {}, o.args ?? {});
  const own = (r: string) => /^(run script|shell) changed$|^copy to |^(mode|owner) of |^inline file |^copy order/.test(r);
  const kept = reasons.filter((r) => !own(r));
  if (args.length) return [...kept, ...args];
  if (kept.length < reasons.length) return [`${o.file}:${o.line} ${o.instruction} changed`, ...kept];
  return reasons;
}

function diffAll(prev: StageInputs, cur: StageInputs): string[] {
  const out: string[] = [];
  if (prev.format !== cur.format) out.push("mstage's layer format changed");
  if (prev.platform !== cur.platform) out.push(`platform changed to ${cur.platform}`);
  out.push(...diffBase(prev.base, cur.base, prev, cur));
  out.push(...diffCopies(prev.copy ?? [], cur.copy, prev, cur));
  if (!same(prev.run, cur.run)) out.push("run script changed");
  if (!same(prev.shell, cur.shell)) out.push("shell changed");
  out.push(...diffRecord("env", prev.env ?? {}, cur.env));
  if (prev.workdir !== cur.workdir) out.push(`workdir changed to ${cur.workdir ?? "the base's"}`);
  if (prev.runAs !== cur.runAs) out.push(`runAs changed to ${cur.runAs ?? "the base's user"}`);
  if (prev.network !== cur.network) out.push(`network changed to ${cur.network}`);
  out.push(...diffBinds(prev, cur));
  if (!same(prev.tmpfs ?? [], cur.tmpfs ?? [])) out.push("tmpfs mounts changed");
  return out;
}

function diffBase(a: BaseInput, b: BaseInput, pa: StageInputs, pb: StageInputs): string[] {
  if (a.kind !== b.kind) return [`base changed from ${describeBase(a)} to ${describeBase(b)}`];
  switch (b.kind) {
    case "scratch":
      return [];
    case "image": {
      const p = a as typeof b;
      if (p.ref !== b.ref) return [`base changed from ${p.ref} to ${b.ref}`];
      if (p.platform !== b.platform) return [`base platform changed to ${b.platform}`];
      if (p.identity !== b.identity) return [b.identity ? `base ${b.ref} now ${short(b.identity)}` : `base ${b.ref} not resolved yet (run mstage up)`];
      return [];
    }
    case "stage": {
      const p = a as typeof b;
      if (p.stage !== b.stage) return [`base changed from stage ${p.stage} to stage ${b.stage}`];
      if (p.key !== b.key) return [`upstream ${b.stage} changed`];
      if (p.user !== b.user) return [`user inherited from ${b.stage} changed`];
      return [];
    }
    case "oci": {
      const p = a as typeof b;
      if (p.layout !== b.layout || p.ref !== b.ref) return [`base changed to ${describeBase(b)}`];
      return p.identity !== b.identity ? [`base ${describeBase(b)} now ${short(b.identity)}`] : [];
    }
    case "debian": {
      const p = a as typeof b;
      if (!same({ ...p, identity: 0 }, { ...b, identity: 0 })) return [`base changed to ${describeBase(b)}`];
      return p.identity !== b.identity ? [`base ${describeBase(b)}: pinned package versions changed`] : [];
    }
    case "tarball":
      return diffSource("tarball", (a as typeof b).source, b.source, pa, pb);
  }
}

function describeBase(b: BaseInput): string {
  switch (b.kind) {
    case "scratch":
      return "scratch()";
    case "image":
      return b.ref;
    case "stage":
      return `stage ${b.stage}`;
    case "oci":
      return `oci ${b.layout}${b.ref ? ":" + b.ref : ""}`;
    case "debian":
      return `debian ${b.suite}${b.packages.length ? " +" + b.packages.join(",") : ""}`;
    case "tarball":
      return `tarball of ${b.source.kind === "local" ? b.source.path : b.source.kind === "stage-path" ? `${b.source.stage}:${b.source.path}` : "inline"}`;
  }
}

function diffCopies(a: CopyInput[], b: CopyInput[], pa: StageInputs, pb: StageInputs): string[] {
  const out: string[] = [];
  const before = new Map(a.map((c) => [c.dest, c]));
  const after = new Map(b.map((c) => [c.dest, c]));
  for (const c of b) {
    const p = before.get(c.dest);
    if (!p) {
      out.push(`copy to ${c.dest} added`);
      continue;
    }
    out.push(...diffSource(`copy to ${c.dest}`, p.source, c.source, pa, pb));
    if (p.mode !== c.mode) out.push(`mode of ${c.dest} changed`);
    if (p.owner !== c.owner) out.push(`owner of ${c.dest} changed`);
  }
  for (const c of a) if (!after.has(c.dest)) out.push(`copy to ${c.dest} removed`);
  if (out.length === 0 && !same(a.map((c) => c.dest), b.map((c) => c.dest))) out.push("copy order changed");
  return out;
}

/** A source's entry fingerprints (StageInputs.files): its lines, or the object states held before. */
function fileList(files: string | Record<string, string>): Map<string, string> {
  if (typeof files !== "string") return new Map(Object.entries(files));
  const out = new Map<string, string>();
  for (const line of files.split("\n")) {
    if (line === "") continue;
    const [rel, fp] = JSON.parse(`[${line}]`) as [string, string];
    out.set(rel, fp);
  }
  return out;
}

function diffSource(what: string, a: SourceInput, b: SourceInput, pa: StageInputs, pb: StageInputs): string[] {
  if (a.kind !== b.kind) return [`${what}: source changed`];
  switch (b.kind) {
    case "local": {
      const p = a as typeof b;
      if (p.path !== b.path) return [`${what}: now from local ${b.path}`];
      if (p.digest === b.digest) return [];
      return diffFiles(b.path, pa.files?.[p.path] ?? {}, pb.files[b.path] ?? {}) || [`local ${b.path} changed`];
    }
    case "stage-path": {
      const p = a as typeof b;
      if (p.stage !== b.stage || p.path !== b.path) return [`${what}: now from ${b.stage}:${b.path}`];
      return p.key !== b.key ? [`upstream ${b.stage} changed`] : [];
    }
    case "inline":
      return (a as typeof b).digest !== b.digest ? [`inline file ${what.replace(/^copy to /, "")} changed`] : [];
    case "archive":
      return diffSource(what, (a as typeof b).source, b.source, pa, pb);
    case "http": {
      const p = a as typeof b;
      if (p.url !== b.url) return [`${what}: now from ${b.url}`];
      if (p.digest === b.digest || !b.digest) return [];
      return [b.unpinned ? `http ${b.url} now ${short(b.digest)}` : `${what}: checksum of ${b.url} changed`];
    }
    case "git": {
      const p = a as typeof b;
      if (p.url !== b.url || p.ref !== b.ref) return [`${what}: now from git ${b.url}#${b.ref}`];
      if (p.keepGitDir !== b.keepGitDir) return [`${what}: keepGitDir changed`];
      // A full commit id as the ref names itself; a branch or tag that moved says where to.
      return p.commit !== b.commit && b.commit ? [`git ${b.url}#${b.ref} now ${b.commit.slice(0, 12)}`] : [];
    }
  }
}

/** "local ./src/main.go changed", "local ./src/new.go added", at most a few, then a count. */
function diffFiles(root: string, before: string | Record<string, string>, after: string | Record<string, string>): string[] | undefined {
  const a = fileList(before);
  const b = fileList(after);
  const changes: string[] = [];
  for (const [rel, fp] of b) {
    const was = a.get(rel);
    if (was === undefined) changes.push(`local ${join(root, rel)} added`);
    else if (was !== fp) changes.push(`local ${join(root, rel)} changed`);
  }
  for (const rel of a.keys()) if (!b.has(rel)) changes.push(`local ${join(root, rel)} removed`);
  if (changes.length === 0) return undefined;
  if (changes.length <= MAX_FILES + 1) return changes;
  return [...changes.slice(0, MAX_FILES), `and ${changes.length - MAX_FILES} more files under local ${root}`];
}

function join(root: string, rel: string): string {
  return rel === "" ? root : `${root === "." ? "." : root}/${rel}`;
}

function diffRecord(name: string, a: Record<string, string>, b: Record<string, string>): string[] {
  const out: string[] = [];
  for (const k of Object.keys(b)) {
    if (!(k in a)) out.push(`${name} ${k} added`);
    else if (a[k] !== b[k]) out.push(`${name} ${k} changed`);
  }
  for (const k of Object.keys(a)) if (!(k in b)) out.push(`${name} ${k} removed`);
  return out;
}

function diffBinds(a: StageInputs, b: StageInputs): string[] {
  const out: string[] = [];
  const before = new Map((a.binds ?? []).map((x) => [x.target, x]));
  for (const x of b.binds) {
    const p = before.get(x.target);
    if (!p) out.push(`bind ${x.target} added`);
    else if (p.host !== x.host || p.readonly !== x.readonly) out.push(`bind ${x.target} changed`);
    else if (p.digest !== x.digest) out.push(`contents of bind ${x.target} (${x.host}) changed`);
  }
  for (const x of a.binds ?? []) if (!b.binds.some((y) => y.target === x.target)) out.push(`bind ${x.target} removed`);
  return out;
}

function short(digest: string): string {
  return digest.length > 19 ? digest.slice(0, 19) + "…" : digest;
}
