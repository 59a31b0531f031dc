// containers' registries.conf (v2), read the way podman, buildah and skopeo read it: the first of
// $CONTAINERS_REGISTRIES_CONF, ~/.config/containers/registries.conf, /etc/containers/registries.conf;
// `[[registry]]` prefix/location/insecure/blocked with its `[[registry.mirror]]`s, and
// `unqualified-search-registries` for short names. Pulls try the mirrors in order, then the
// registry itself.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { UserError } from "@mstage/core";
import { parse as parseToml } from "smol-toml";
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
}

export interface RegistriesConf {
  /** The file read, if any. */
  file?: string;
  /** Registries a short name (`golang:1.21`) is looked for in; default docker.io, as Docker does. */
  search: string[];
  registries: RegistryEntry[];
}

/** Where one pull may be served from: a mirror or the registry (location) itself. */
export interface Endpoint {
  ref: Reference;
  /** Set when a mirror serves it: the mirror's location, for "served by" notes. */
  mirror?: string;
}

const EMPTY: RegistriesConf = { search: [DOCKER_HUB], registries: [] };

/** The files looked at, in order; the first that exists is used. */
export function registriesConfCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.CONTAINERS_REGISTRIES_CONF) return [env.CONTAINERS_REGISTRIES_CONF];
  const home = env.HOME || homedir();
  return [join(home, ".config", "containers", "registries.conf"), "/etc/containers/registries.conf"];
}

let cached: { key: string; conf: RegistriesConf } | undefined;

/** The registries.conf in force for this process (read once per environment). */
export function loadRegistriesConf(env: NodeJS.ProcessEnv = process.env): RegistriesConf {
  const candidates = registriesConfCandidates(env);
  const key = candidates.join("\0");
  if (cached?.key === key) return cached.conf;
  const file = candidates.find((f) => existsSync(f));
  let conf = EMPTY;
  if (file) {
    conf = parseRegistriesConf(readFileSync(file, "utf8"), file);
  } else if (env.CONTAINERS_REGISTRIES_CONF) {
    throw new UserError(`CONTAINERS_REGISTRIES_CONF names ${env.CONTAINERS_REGISTRIES_CONF}, which does not exist`);
  }
  cached = { key, conf };
  return conf;
}

/** Parses a registries.conf (v2 format); mistakes are UserErrors naming the file. */
export function parseRegistriesConf(text: string, file = "registries.conf"): RegistriesConf {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${file}: not valid TOML: ${(e as Error).message.split("\n")[0]}`);
  }
  const bad = (what: string): never => {
    throw new UserError(`${file}: ${what}`);
  };
  if ("registries" in doc && !Array.isArray(doc.registries)) bad(`the v1 format ([registries.search] …) is not supported; write [[registry]] tables (see containers-registries.conf(5))`);
  const search = doc["unqualified-search-registries"] ?? [DOCKER_HUB];
  if (!Array.isArray(search) || search.some((s) => typeof s !== "string")) bad(`unqualified-search-registries must be a list of registry hosts`);
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
    registries.push({ prefix: prefix!.replace(/\/+$/, ""), location: (location ?? prefix!).replace(/\/+$/, ""), insecure: bool(raw, "insecure"), blocked: bool(raw, "blocked"), mirrors });
  }
  return { file, search: search as string[], registries };
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
 * The references a written reference may mean: a short name once per unqualified-search
 * registry, anything else itself.
 */
export function candidates(input: string | Reference, conf: RegistriesConf): Reference[] {
  if (typeof input !== "string") return [input];
  const first = input.split("/")[0]!;
  const qualified = input.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  if (qualified || conf.search.length === 0) return [parseReference(input)];
  return conf.search.map((reg) => parseReference(`${reg}/${input}`));
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
    out.push({ ref: rewrite(m.location), mirror: m.location });
  }
  out.push({ ref: e.location === e.prefix ? r : rewrite(e.location) });
  return out;
}

/** Every endpoint for a written reference: per search candidate, its mirrors then itself. */
export function pullEndpoints(input: string | Reference, conf: RegistriesConf): Endpoint[] {
  return candidates(input, conf).flatMap((r) => endpoints(r, conf));
}
