// containers' registries.conf (v2), read the way podman, buildah and skopeo read it: the first of
// $CONTAINERS_REGISTRIES_CONF, ~/.config/containers/registries.conf, /etc/containers/registries.conf,
// then the `*.conf` drop-ins of registries.conf.d (containers-registries.conf.d(5)); `[[registry]]`
// prefix/location/insecure/blocked with its `[[registry.mirror]]`s, and for short names the
// `[aliases]` table, `unqualified-search-registries` and `short-name-mode`. Pulls try the mirrors
// in order, then the registry itself.
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";
import { UserError } from "@mstage/core";
import { DOCKER_HUB, formatReference, hostWithoutPort, parseReference, referenceName, type Reference } from "./reference.ts";

export interface Mirror {
  location: string;
  insecure: boolean;
  /** "all" (default), "digest-only" or "tag-only". */
  pullFromMirror: "all" | "digest-only" | "tag-only";
}

export interface RegistryEntry {
  /** What the entry matches: `docker.io`, `docker.io/library`, `*.example.com`. */
  prefix: string;
  /** What a matching prefix is replaced by; default the prefix. */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrors: Mirror[];
  /** The file that defined it (a drop-in's entry replaces the one with its prefix). */
  file?: string;
}

export type ShortNameMode = "enforcing" | "permissive" | "disabled";

export interface RegistriesConf {
  /** The main file read, if any. */
  file?: string;
  /** Every file read, in order: the main file, then the drop-ins. */
  files?: string[];
  /** Registries a short name (`golang:1.21`) is looked for in; default docker.io, as Docker does. */
  search: string[];
  /** The file that set `search`. */
  searchFile?: string;
  registries: RegistryEntry[];
  /** `[aliases]`: a short name ("alpine", "opensuse/leap") → a fully-qualified name, and its file. */
  aliases?: Record<string, { name: string; file: string }>;
  /**
   * Without an alias and with several search registries: "enforcing" refuses the short name (podman
   * would prompt on a terminal; mstage never prompts), "permissive" (default) and "disabled" try
   * each search registry in order.
   */
  shortNameMode?: ShortNameMode;
}

/** Where one pull may be served from: a mirror or the registry (location) itself. */
export interface Endpoint {
  ref: Reference;
  /** Set when a mirror serves it: the mirror's location, for "served by" notes. */
  mirror?: string;
  /** The file whose entry gave the mirror. */
  file?: string;
  /** Set when a short-name alias chose the registry: what it named, and the file it is in. */
  alias?: { name: string; file: string };
}

/** What one file sets; a key it does not have leaves the earlier files' value. */
interface FileConf {
  search?: string[];
  registries: RegistryEntry[];
  /** An empty name erases the alias. */
  aliases: Record<string, string>;
  shortNameMode?: ShortNameMode;
}

const EMPTY: RegistriesConf = { search: [DOCKER_HUB], registries: [], aliases: {}, files: [] };

/** The files looked at, in order; the first that exists is used. */
export function registriesConfCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.CONTAINERS_REGISTRIES_CONF) return [env.CONTAINERS_REGISTRIES_CONF];
  const home = env.HOME || homedir();
  return [join(home, ".config", "containers", "registries.conf"), "/etc/containers/registries.conf"];
}

let cached: { key: string; conf: RegistriesConf } | undefined;

/**
 * The registries.conf.d directories read after `main`, as containers/image does: the user's own
 * registries.conf brings only the user's drop-ins; the system's (or $CONTAINERS_REGISTRIES_CONF)
 * the system's and then the user's.
 */
export function registriesConfDirs(main: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME || homedir();
  const user = join(home, ".config", "containers", "registries.conf.d");
  if (!env.CONTAINERS_REGISTRIES_CONF && main === join(home, ".config", "containers", "registries.conf")) return [user];
  return ["/etc/containers/registries.conf.d", user];
}

/** The `*.conf` files of a drop-in directory, in alphanumerical order; no subdirectories. */
function dropIns(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names.filter((n) => n.endsWith(".conf") && statSync(join(dir, n), { throwIfNoEntry: false })?.isFile()).map((n) => join(dir, n));
}

/** The registries.conf in force for this process (read once per environment). */
export function loadRegistriesConf(env: NodeJS.ProcessEnv = process.env): RegistriesConf {
  const candidates = registriesConfCandidates(env);
  const file = candidates.find((f) => existsSync(f));
  if (!file && env.CONTAINERS_REGISTRIES_CONF) {
    throw new UserError(`CONTAINERS_REGISTRIES_CONF names ${env.CONTAINERS_REGISTRIES_CONF}, which does not exist`);
  }
  const files = [...(file ? [file] : []), ...registriesConfDirs(file, env).flatMap(dropIns)];
  const key = files.join("\0");
  if (cached?.key === key) return cached.conf;
  let conf: RegistriesConf = { ...EMPTY, ...(file ? { file } : {}) };
  for (const f of files) conf = mergeRegistriesConf(conf, parseFile(readFileSync(f, "utf8"), f, f !== file), f);
  cached = { key, conf };
  return conf;
}

/** Parses a registries.conf (v2 format); mistakes are UserErrors naming the file. */
export function parseRegistriesConf(text: string, file = "registries.conf"): RegistriesConf {
  return mergeRegistriesConf({ ...EMPTY, file }, parseFile(text, file, false), file);
}

/**
 * A drop-in over what the files before it set (containers-registries.conf.d(5)): each key it has
 * replaces the earlier value, a [[registry]] replaces the one with the same prefix, and aliases
 * are merged name by name ("" erases one).
 */
export function mergeRegistriesConf(c: RegistriesConf, u: FileConf, file: string): RegistriesConf {
  const byPrefix = new Map(c.registries.map((r) => [r.prefix, r]));
  for (const r of u.registries) byPrefix.set(r.prefix, r);
  const aliases = { ...(c.aliases ?? {}) };
  for (const [k, v] of Object.entries(u.aliases)) {
    if (v === "") delete aliases[k];
    else aliases[k] = { name: v, file };
  }
  return {
    ...c,
    files: [...(c.files ?? []), file],
    ...(u.search !== undefined ? { search: u.search, searchFile: file } : {}),
    registries: [...byPrefix.values()],
    aliases,
    ...(u.shortNameMode !== undefined ? { shortNameMode: u.shortNameMode } : {}),
  };
}

/**
 * smol-toml, loaded when a file is first parsed rather than with this module: its ESM build is eight
 * files, ~8 ms of every mstage start, and most runs read no registries.conf (RegistryClient reads it
 * on its first request). Its CommonJS build, one file, is what require() gets.
 */
let toml: typeof import("smol-toml") | undefined;
function parseToml(text: string): unknown {
  toml ??= createRequire(import.meta.url)("smol-toml") as typeof import("smol-toml");
  return toml.parse(text);
}

function parseFile(text: string, file: string, dropIn: boolean): FileConf {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${file}: not valid TOML: ${(e as Error).message.split("\n")[0]}`);
  }
  const bad = (what: string): never => {
    throw new UserError(`${file}: ${what}`);
  };
  if ("registries" in doc && !Array.isArray(doc.registries)) bad(`the v1 format ([registries.search] …) is not supported${dropIn ? " in a drop-in" : ""}; write [[registry]] tables (see containers-registries.conf(5))`);
  const search = doc["unqualified-search-registries"];
  if (search !== undefined && (!Array.isArray(search) || search.some((s) => typeof s !== "string"))) bad(`unqualified-search-registries must be a list of registry hosts`);
  const mode = doc["short-name-mode"];
  if (mode !== undefined && mode !== "" && !["enforcing", "permissive", "disabled"].includes(mode as string)) bad(`short-name-mode must be "enforcing", "permissive" or "disabled", not ${JSON.stringify(mode)}`);
  const aliases: Record<string, string> = {};
  const rawAliases = doc.aliases ?? {};
  if (typeof rawAliases !== "object" || rawAliases === null || Array.isArray(rawAliases)) bad(`[aliases] must be a table of "short-name" = "registry.example.com/name"`);
  for (const [name, value] of Object.entries(rawAliases as Record<string, unknown>)) {
    if (typeof value !== "string") bad(`[aliases] "${name}" must be a string`);
    if (isQualified(name) || /[:@]/.test(name)) bad(`[aliases] "${name}": an alias is a short name, without a registry, tag or digest`);
    const v = value as string;
    if (v !== "" && (!isQualified(v) || /@/.test(v) || /:[^/]*$/.test(v.slice(v.indexOf("/"))))) bad(`[aliases] "${name}" = "${v}": the value must be a fully-qualified name without tag or digest, like "docker.io/library/${name}"`);
    aliases[name] = v;
  }
  const registries: RegistryEntry[] = [];
  const list = doc.registry ?? [];
  if (!Array.isArray(list)) bad(`"registry" must be a list of [[registry]] tables`);
  for (const [i, raw] of (list as Record<string, unknown>[]).entries()) {
    const where = `[[registry]] #${i + 1}`;
    const str = (o: Record<string, unknown>, k: string): string | undefined => {
      const v = o[k];
      if (v !== undefined && typeof v !== "string") bad(`${where}: ${k} must be a string`);
      return v as string | undefined;
    };
    const bool = (o: Record<string, unknown>, k: string): boolean => {
      const v = o[k] ?? false;
      if (typeof v !== "boolean") bad(`${where}: ${k} must be true or false`);
      return v as boolean;
    };
    const location = str(raw, "location");
    const prefix = str(raw, "prefix") ?? location;
    if (!prefix) bad(`${where} needs a prefix or a location`);
    const mirrors: Mirror[] = [];
    const rawMirrors = raw.mirror ?? [];
    if (!Array.isArray(rawMirrors)) bad(`${where}: "mirror" must be a list of [[registry.mirror]] tables`);
    for (const m of rawMirrors as Record<string, unknown>[]) {
      const loc = str(m, "location");
      if (!loc) bad(`${where}: a [[registry.mirror]] needs a location`);
      const pfm = str(m, "pull-from-mirror") ?? "all";
      if (!["all", "digest-only", "tag-only"].includes(pfm)) bad(`${where}: pull-from-mirror must be all, digest-only or tag-only`);
      mirrors.push({ location: loc!.replace(/\/+$/, ""), insecure: bool(m, "insecure"), pullFromMirror: pfm as Mirror["pullFromMirror"] });
    }
    registries.push({ prefix: prefix!.replace(/\/+$/, ""), location: (location ?? prefix!).replace(/\/+$/, ""), insecure: bool(raw, "insecure"), blocked: bool(raw, "blocked"), mirrors, file });
  }
  return {
    ...(search !== undefined ? { search: search as string[] } : {}),
    registries,
    aliases,
    ...(mode !== undefined && mode !== "" ? { shortNameMode: mode as ShortNameMode } : {}),
  };
}

/** A name that starts with a registry host (has a dot or a port, or is localhost). */
function isQualified(name: string): boolean {
  const first = name.split("/")[0]!;
  return name.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
}

/** Hosts that registries.conf marks insecure (a registry's location or a mirror's). */
export function insecureHosts(conf: RegistriesConf): string[] {
  const out = new Set<string>();
  for (const r of conf.registries) {
    if (r.insecure && !r.location.startsWith("*")) out.add(r.location.split("/")[0]!);
    for (const m of r.mirrors) if (m.insecure) out.add(m.location.split("/")[0]!);
  }
  return [...out];
}

/**
 * The references a written reference may mean: a short name its alias, else once per
 * unqualified-search registry (as short-name-mode allows); anything else itself.
 */
export function candidates(input: string | Reference, conf: RegistriesConf): { ref: Reference; alias?: { name: string; file: string } }[] {
  if (typeof input !== "string") return [{ ref: input }];
  if (isQualified(input)) return [{ ref: parseReference(input) }];
  // Tags and digests are not part of the alias's name; they are put back on its value.
  const at = input.indexOf("@");
  const beforeDigest = at < 0 ? input : input.slice(0, at);
  const colon = beforeDigest.lastIndexOf(":");
  const name = colon > beforeDigest.lastIndexOf("/") ? beforeDigest.slice(0, colon) : beforeDigest;
  const alias = conf.aliases?.[name];
  if (alias) {
    const ref = parseReference(alias.name + input.slice(name.length));
    return [{ ref, alias: { name: formatReference(ref), file: alias.file } }];
  }
  const where = conf.searchFile ?? conf.file ?? "registries.conf";
  if (conf.search.length === 0) throw new UserError(`${input} is a short name, and ${where} sets no unqualified-search-registries and no alias for it: write the full name, like docker.io/library/${name}`);
  if (conf.search.length > 1 && conf.shortNameMode === "enforcing") {
    throw new UserError(`${input} is a short name that could come from ${conf.search.join(", ")} (short-name-mode = "enforcing"; mstage never prompts): write the full name, or add an alias to [aliases] in ${where}`);
  }
  return conf.search.map((reg) => ({ ref: parseReference(`${reg}/${input}`) }));
}

/** The longest-prefix [[registry]] entry for a reference. */
export function matchRegistry(r: Reference, conf: RegistriesConf): RegistryEntry | undefined {
  const name = referenceName(r);
  let best: RegistryEntry | undefined;
  for (const e of conf.registries) {
    if (!prefixMatches(e.prefix, name, r.registry)) continue;
    if (!best || e.prefix.length > best.prefix.length) best = e;
  }
  return best;
}

function prefixMatches(prefix: string, name: string, host: string): boolean {
  if (prefix.startsWith("*.")) return hostWithoutPort(host).endsWith(prefix.slice(1));
  return name === prefix || name.startsWith(prefix + "/");
}

/** Where to pull `r` from, in order: the matching entry's mirrors, then its location. */
export function endpoints(r: Reference, conf: RegistriesConf): Endpoint[] {
  const e = matchRegistry(r, conf);
  if (!e) return [{ ref: r }];
  if (e.blocked) throw new UserError(`${formatReference(r)}: the registry ${e.prefix} is blocked in ${conf.file ?? "registries.conf"}`);
  if (e.prefix.startsWith("*.")) return [{ ref: r }];
  const name = referenceName(r);
  const rest = name.slice(e.prefix.length);
  const rewrite = (location: string): Reference => {
    const suffix = (r.tag !== undefined ? `:${r.tag}` : "") + (r.digest ? `@${r.digest}` : "");
    return parseReference(`${location}${rest}${suffix}`);
  };
  const out: Endpoint[] = [];
  for (const m of e.mirrors) {
    if (m.pullFromMirror === "digest-only" && !r.digest) continue;
    if (m.pullFromMirror === "tag-only" && r.digest) continue;
    out.push({ ref: rewrite(m.location), mirror: m.location, ...(e.file ? { file: e.file } : {}) });
  }
  out.push({ ref: e.location === e.prefix ? r : rewrite(e.location) });
  return out;
}

/** Every endpoint for a written reference: per search candidate, its mirrors then itself. */
export function pullEndpoints(input: string | Reference, conf: RegistriesConf): Endpoint[] {
  return candidates(input, conf).flatMap((c) => endpoints(c.ref, conf).map((e) => (c.alias ? { ...e, alias: c.alias } : e)));
}
