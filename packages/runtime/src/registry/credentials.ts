// Where registry credentials come from (docker/podman auth files and credential helpers).
// Credentials are only ever turned into request headers (transport/bearer.ts).
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { UserError } from "@mstage/core";
import { DOCKER_HUB } from "./reference.ts";

export interface Credentials {
  username: string;
  password: string;
}

/** Looks up credentials for a registry host; undefined means anonymous. */
export type CredentialSource = (registry: string, repository?: string) => Promise<Credentials | undefined>;

/**
 * Reads credentials the way podman and docker do: `$REGISTRY_AUTH_FILE` first, then
 * `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`); entries under `auths` with a base64
 * `auth` or `username`/`password`, else the file's `credHelpers[host]` or `credsStore`
 * (`docker-credential-<name> get`). Files are read once per source.
 */
export function fileCredentials(files?: string[]): CredentialSource {
  const paths = files ?? defaultAuthFiles();
  let loaded: Promise<AuthEntries[]> | undefined;
  return async (registry, repository) => {
    loaded ??= Promise.all(paths.map(readAuthFile));
    const all = await loaded;
    for (const entries of all) {
      const found = lookup(entries, registry, repository);
      if (found) return found;
    }
    for (const entries of all) {
      const helper = entries.helpers[registry] ?? entries.store;
      if (helper) return credentialHelper(helper, registry, entries.file);
    }
    return undefined;
  };
}

export function defaultAuthFiles(): string[] {
  const files: string[] = [];
  if (process.env.REGISTRY_AUTH_FILE) files.push(process.env.REGISTRY_AUTH_FILE);
  const dockerDir = process.env.DOCKER_CONFIG || join(homedir(), ".docker");
  files.push(join(dockerDir, "config.json"));
  return files;
}

interface AuthEntries {
  file: string;
  /** Normalised key (host or host/path) → credentials. */
  byKey: Map<string, Credentials>;
  /** credHelpers: host → helper name. */
  helpers: Record<string, string>;
  /** credsStore: the helper for every other host. */
  store?: string;
}

async function readAuthFile(file: string): Promise<AuthEntries> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { file, byKey: new Map(), helpers: {} };
    throw new UserError(`cannot read registry credentials from ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UserError(`registry credentials file ${file} is not valid JSON`);
  }
  const doc = json as { auths?: Record<string, { auth?: string; username?: string; password?: string }>; credHelpers?: Record<string, string>; credsStore?: string };
  const auths = doc.auths ?? {};
  const byKey = new Map<string, Credentials>();
  for (const [key, entry] of Object.entries(auths)) {
    const creds = decodeEntry(entry, file, key);
    if (creds) byKey.set(normaliseAuthKey(key), creds);
  }
  const helpers: Record<string, string> = {};
  for (const [key, name] of Object.entries(doc.credHelpers ?? {})) helpers[normaliseAuthKey(key)] = name;
  return { file, byKey, helpers, ...(doc.credsStore ? { store: doc.credsStore } : {}) };
}

function decodeEntry(entry: { auth?: string; username?: string; password?: string }, file: string, key: string): Credentials | undefined {
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    // The message names the file and entry only: the value is a secret.
    if (colon < 0) throw new UserError(`registry credentials file ${file}: auths["${key}"].auth is not base64 of "user:password"`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, password: entry.password };
  return undefined;
}

/**
 * Asks a docker credential helper (`docker-credential-<name> get`, the host on stdin). A helper that
 * knows nothing of the host means anonymous; one that is missing or fails is an error naming it.
 */
function credentialHelper(name: string, registry: string, file: string): Promise<Credentials | undefined> {
  const bin = `docker-credential-${name}`;
  const server = registry === DOCKER_HUB ? "https://index.docker.io/v1/" : registry;
  return new Promise((resolve, reject) => {
    execFile(bin, ["get"], { timeout: 30_000 }, (err, stdout, stderr) => {
      const out = String(stdout);
      if (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") {
          reject(new UserError(`${file} names credential helper "${name}" for ${registry}, but ${bin} is not on PATH`));
        } else if (/credentials not found/i.test(out + stderr)) {
          resolve(undefined);
        } else {
          // stdout may hold a secret; only the helper's stderr is shown.
          reject(new UserError(`${bin} get failed for ${registry}: ${String(stderr).trim() || err.message}`));
        }
        return;
      }
      try {
        const c = JSON.parse(out) as { Username?: string; Secret?: string };
        resolve(c.Secret ? { username: c.Username ?? "", password: c.Secret } : undefined);
      } catch {
        reject(new UserError(`${bin} get answered something that is not JSON for ${registry}`));
      }
    }).stdin?.end(server);
  });
}

// "https://index.docker.io/v1/" → "docker.io"; "http://host:5000/" → "host:5000"; "host/ns" kept.
function normaliseAuthKey(key: string): string {
  let k = key.replace(/^[a-z]+:\/\//, "").replace(/\/+$/, "");
  if (k.endsWith("/v1") || k.endsWith("/v2")) k = k.slice(0, -3);
  const [host, ...path] = k.split("/");
  const h = host === "index.docker.io" || host === "registry-1.docker.io" ? DOCKER_HUB : host!;
  return [h, ...path].join("/");
}

// The most specific entry wins: host/ns/repo, then host/ns, then host (podman's rule).
function lookup(entries: AuthEntries, registry: string, repository?: string): Credentials | undefined {
  if (repository) {
    const parts = repository.split("/");
    for (let n = parts.length; n > 0; n--) {
      const c = entries.byKey.get(`${registry}/${parts.slice(0, n).join("/")}`);
      if (c) return c;
    }
  }
  return entries.byKey.get(registry);
}
