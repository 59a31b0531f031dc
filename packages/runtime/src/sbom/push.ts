// Pushing attestations next to an image (distribution-spec 1.1 "Pushing manifests with subject"):
// each artifact manifest is pushed by digest; a registry with the referrers API indexes it from its
// subject; one without it (distribution 2.8, Debian's docker-registry) gets the tag-schema
// fallback, an image index tagged `sha256-<hex of subject>` listing the subject's referrers.
import { RegistryError } from "@mstage/core";
import type { Digest } from "../oci/digest.ts";
import { digestHex } from "../oci/digest.ts";
import { canonicalBlob } from "../oci/canonical.ts";
import { MediaType, type Descriptor, type ImageIndex } from "../oci/types.ts";
import { header, type RegistryClient } from "../registry/client.ts";
import { pullScope } from "../registry/pull.ts";
import { pushImage, pushScope, type BlobSource } from "../registry/push.ts";
import { referenceName, type Reference } from "../registry/reference.ts";
import { ATTESTATION_ANNOTATION, type Artifact } from "./artifact.ts";

const MAX_INDEX_BYTES = 4 << 20;

export interface PushedReferrers {
  /** "api" when the registry lists referrers itself, "tag" when the fallback tag was written. */
  via: "api" | "tag";
  digests: Digest[];
}

export async function pushReferrers(client: RegistryClient, repo: Reference, subject: Digest, artifacts: Artifact[], source: BlobSource): Promise<PushedReferrers> {
  const base: Reference = { registry: repo.registry, repository: repo.repository };
  for (const a of artifacts) {
    await pushImage({
      ref: { ...base, digest: a.descriptor.digest },
      manifest: { bytes: a.manifestBytes, mediaType: MediaType.ociManifest },
      config: { digest: a.config.digest, size: a.config.size },
      layers: a.layers.map((l) => ({ digest: l.digest, size: l.size })),
      source,
      client,
    });
  }
  const digests = artifacts.map((a) => a.descriptor.digest);
  if (await hasReferrersApi(client, base, subject)) return { via: "api", digests };

  const tag = `sha256-${digestHex(subject)}`;
  const previous = await fetchIndex(client, base, `manifests/${tag}`, pushScope(base));
  // mstage's earlier attestations of this subject are replaced; anyone else's are kept.
  const kinds = new Set(artifacts.map((a) => a.kind));
  const kept = (previous?.manifests ?? []).filter((d) => !digests.includes(d.digest) && !kinds.has(d.annotations?.[ATTESTATION_ANNOTATION] as Artifact["kind"]));
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...kept, ...artifacts.map((a): Descriptor => a.descriptor)] };
  const blob = canonicalBlob(index);
  const res = await client.request(base.registry, {
    method: "PUT",
    path: `/v2/${base.repository}/manifests/${tag}`,
    scopes: [pushScope(base)],
    headers: { "content-type": MediaType.ociIndex },
    body: () => blob.bytes,
    ok: [200, 201],
    what: `referrers tag ${referenceName(base)}:${tag}`,
  });
  await res.body.dump();
  return { via: "tag", digests };
}

/** Whether the registry answers the referrers API (a 404 means it has none). */
async function hasReferrersApi(client: RegistryClient, r: Reference, subject: Digest): Promise<boolean> {
  const res = await client.request(r.registry, {
    method: "GET",
    path: `/v2/${r.repository}/referrers/${subject}`,
    scopes: [pushScope(r)],
    headers: { accept: MediaType.ociIndex },
    ok: [200, 404],
    what: `referrers of ${referenceName(r)}@${subject}`,
  });
  await res.body.dump();
  return res.status === 200 && (header(res.headers, "content-type") ?? "").startsWith(MediaType.ociIndex);
}

/** The referrers of `subject`: from the referrers API where the registry has it, else from the tag-schema index. */
export async function listReferrers(client: RegistryClient, repo: Reference, subject: Digest): Promise<Descriptor[]> {
  const base: Reference = { registry: repo.registry, repository: repo.repository };
  const api = await fetchIndex(client, base, `referrers/${subject}`, pullScope(base));
  const index = api ?? (await fetchIndex(client, base, `manifests/sha256-${digestHex(subject)}`, pullScope(base)));
  return index?.manifests ?? [];
}

/** An image index at `/v2/<repo>/<path>`; undefined when there is none (404, or not an index). */
async function fetchIndex(client: RegistryClient, r: Reference, path: string, scope: string): Promise<ImageIndex | undefined> {
  const what = `referrers index ${referenceName(r)} ${path}`;
  const res = await client.request(r.registry, {
    method: "GET",
    path: `/v2/${r.repository}/${path}`,
    scopes: [scope],
    headers: { accept: MediaType.ociIndex },
    ok: [200, 404],
    what,
  });
  if (res.status === 404 || !(header(res.headers, "content-type") ?? "").startsWith(MediaType.ociIndex)) {
    await res.body.dump();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_INDEX_BYTES) {
      res.body.destroy();
      throw new RegistryError(`${what} is larger than ${MAX_INDEX_BYTES} bytes; refusing it`, 200, "GET", what, false);
    }
    chunks.push(chunk);
  }
  try {
    const index = JSON.parse(Buffer.concat(chunks).toString("utf8")) as ImageIndex;
    return Array.isArray(index.manifests) ? index : undefined;
  } catch {
    return undefined;
  }
}
