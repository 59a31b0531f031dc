// Image references as Docker reads them: `golang:1.22` means docker.io/library/golang:1.22, the
// first path component is a registry only when it looks like a host, and `@sha256:` pins a digest.
import { InvalidReferenceError } from "@mstage/core";
import { isDigest, type Digest } from "../oci/digest.ts";

/** A parsed, normalised image reference. */
export interface Reference {
  /** Registry host as written by users, with port: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  registry: string;
  /** Repository path inside the registry: `library/golang`, `team/app`. */
  repository: string;
  /** Tag; `latest` when the reference had neither tag nor digest. */
  tag?: string;
  /** Pinned manifest digest; when present it wins over the tag. */
  digest?: Digest;
}

export const DOCKER_HUB = "docker.io";
const DOCKER_HUB_API = "registry-1.docker.io";
const DEFAULT_TAG = "latest";

// The grammar of github.com/distribution/reference, written out by hand.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;
const MAX_NAME = 255;

/**
 * Parses and normalises a reference like Docker does.
 * @example parseReference("golang:1.22") // { registry: "docker.io", repository: "library/golang", tag: "1.22" }
 */
export function parseReference(input: string): Reference {
  const ref = input.trim();
  if (ref === "") throw new InvalidReferenceError(input, "empty");
  if (ref.includes("://")) throw new InvalidReferenceError(input, "write it without a scheme, e.g. localhost:5000/app:1.0");

  let rest = ref;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw new InvalidReferenceError(input, `digest ${JSON.stringify(d)} is not sha256:<64 lowercase hex digits>`);
    digest = d;
    rest = rest.slice(0, at);
  }

  // A tag is whatever follows the last ':' after the last '/', so a registry port is not a tag.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new InvalidReferenceError(input, `tag ${JSON.stringify(tag)} may use only letters, digits, '_', '.', '-' (at most 128, not starting with '.' or '-')`);
  }

  let registry = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (looksLikeHost(first)) {
      if (!HOST.test(first)) throw new InvalidReferenceError(input, `registry host ${JSON.stringify(first)} is not a valid host[:port]`);
      registry = first;
      repository = rest.slice(slash + 1);
    }
  }
  if (registry === "index.docker.io" || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (repository === "") throw new InvalidReferenceError(input, "no repository name");
  if (repository !== repository.toLowerCase()) throw new InvalidReferenceError(input, "repository name must be lowercase");
  for (const c of repository.split("/")) {
    if (!COMPONENT.test(c)) throw new InvalidReferenceError(input, `path component ${JSON.stringify(c)} may use only a-z, 0-9 and single '.', '_', '__' or '-' between them`);
  }
  if (registry === DOCKER_HUB && !repository.includes("/")) repository = `library/${repository}`;
  if (registry.length + 1 + repository.length > MAX_NAME) throw new InvalidReferenceError(input, `name longer than ${MAX_NAME} characters`);

  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}

// Docker's rule: a first component is a host if it has a '.' or ':' or is "localhost", or has capitals.
function looksLikeHost(s: string): boolean {
  return s.includes(".") || s.includes(":") || s === "localhost" || s !== s.toLowerCase();
}

/** `registry/repository`, e.g. `docker.io/library/golang`. */
export function referenceName(r: Reference): string {
  return `${r.registry}/${r.repository}`;
}

/** The full normalised form: `docker.io/library/golang:1.22`, `…@sha256:…`, or both. */
export function formatReference(r: Reference): string {
  return referenceName(r) + (r.tag !== undefined ? `:${r.tag}` : "") + (r.digest ? `@${r.digest}` : "");
}

/** What to ask the registry for: the digest when pinned, else the tag. */
export function manifestSelector(r: Reference): string {
  return r.digest ?? r.tag ?? DEFAULT_TAG;
}

/** The same repository, pinned to a digest (the tag kept for readability). */
export function withDigest(r: Reference, digest: Digest): Reference {
  return { ...r, digest };
}

/** The host[:port] to connect to: Docker Hub's API lives on registry-1.docker.io. */
export function apiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** Loopback registries may be spoken to over plain HTTP, like Docker's default insecure range. */
export function isLoopbackHost(registry: string): boolean {
  const host = hostWithoutPort(registry);
  return host === "localhost" || /^127\.\d+\.\d+\.\d+$/.test(host) || host === "::1" || host === "[::1]";
}

export function hostWithoutPort(registry: string): string {
  if (registry.startsWith("[")) return registry.slice(0, registry.indexOf("]") + 1);
  const c = registry.lastIndexOf(":");
  return c >= 0 ? registry.slice(0, c) : registry;
}
