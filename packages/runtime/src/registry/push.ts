// Pushing: every blob the manifest names is checked with HEAD, mounted from a sibling repository
// when possible, uploaded otherwise (one streamed PUT, or PATCH chunks), and then the manifest.
import { Transform, pipeline, type Readable } from "node:stream";
import { RegistryError } from "@mstage/core";
import type { Digest } from "../oci/digest.ts";
import { RegistryClient, header, type RegistryClientOptions } from "./client.ts";
import { manifestDigest } from "./manifest.ts";
import { forEachLimit } from "./pull.ts";
import { formatReference, parseReference, referenceName, withDigest, type Reference } from "./reference.ts";
import { TransferMeter, type TransferProgress } from "./transfer.ts";

export interface PushBlob {
  digest: Digest;
  size: number;
}

/** Where the pushed blobs' bytes come from; the store's `Store` satisfies it. */
export interface BlobSource {
  openBlob(digest: Digest): Readable;
}

export type PushProgress =
  | { kind: "blob"; digest: Digest; size: number; status: "present" | "mounted" | "started" | "uploaded" }
  /** Bytes of a blob's upload handed to the connection so far. */
  | { kind: "bytes"; digest: Digest; size: number; done: number }
  | { kind: "manifest"; ref: string; digest: Digest };

export interface PushOptions extends RegistryClientOptions {
  /** Where to push: `registry/repo:tag` (or `@sha256:` to push by digest only). */
  ref: string | Reference;
  /** The manifest exactly as it will be stored; its sha256 is the pushed digest. */
  manifest: { bytes: Uint8Array; mediaType: string };
  /** None for an image index, whose manifests are pushed first, by digest. */
  config?: PushBlob;
  layers: PushBlob[];
  source: BlobSource;
  /** Other repositories of the same registry (names or references) that may hold the blobs. */
  mountFrom?: string[];
  /** Upload in PATCH chunks of this many bytes; default one streamed PUT per blob. */
  chunkSize?: number;
  /** Blobs uploaded at once; default 4. */
  concurrency?: number;
  onProgress?: (p: PushProgress) => void;
  /** The image's blobs as a whole: bytes done of the total (those already there count at once), and the rate. */
  onTransfer?: (p: TransferProgress) => void;
  client?: RegistryClient;
}

export interface PushResult {
  ref: Reference;
  digest: Digest;
  /** How each blob got there. */
  blobs: { present: number; mounted: number; uploaded: number };
}

const UPLOAD_RESTARTS = 2;

/** Pushes one image (blobs, then its manifest) and returns the manifest digest. */
export async function pushImage(opts: PushOptions): Promise<PushResult> {
  const r = typeof opts.ref === "string" ? parseReference(opts.ref) : opts.ref;
  const mountFrom = (opts.mountFrom ?? []).map((m) => mountRepository(m, r)).filter((m): m is string => m !== undefined);
  const counts = { present: 0, mounted: 0, uploaded: 0 };
  const client = opts.client ?? new RegistryClient(opts);
  try {
    const blobs = uniqueBlobs([...(opts.config ? [opts.config] : []), ...opts.layers]);
    const meter = new TransferMeter(formatReference(r), "push", blobs.reduce((n, b) => n + b.size, 0), opts.onTransfer);
    const onProgress = (p: PushProgress) => {
      if (p.kind === "bytes") meter.progress(p.digest, p.done);
      else if (p.kind === "blob" && (p.status === "present" || p.status === "mounted")) meter.skip(p.size);
      opts.onProgress?.(p);
    };
    await forEachLimit(blobs, opts.concurrency ?? 4, async (b) => {
      const how = await pushBlob(client, r, b, opts.source, mountFrom, opts.chunkSize, onProgress);
      counts[how]++;
    });
    if (blobs.length) meter.finish();

    const digest = manifestDigest(opts.manifest.bytes);
    const selector = r.tag ?? digest;
    if (r.digest && r.digest !== digest) {
      throw new RegistryError(`cannot push ${formatReference(r)}: the manifest's digest is ${digest}`, undefined, "PUT", referenceName(r), false);
    }
    const res = await client.request(r.registry, {
      method: "PUT",
      path: `/v2/${r.repository}/manifests/${selector}`,
      scopes: [pushScope(r)],
      headers: { "content-type": opts.manifest.mediaType },
      body: () => opts.manifest.bytes,
      ok: [201, 200],
      what: `manifest ${referenceName(r)}:${selector}`,
    });
    await res.body.dump();
    const echoed = header(res.headers, "docker-content-digest");
    if (echoed && echoed !== digest) {
      throw new RegistryError(`registry ${r.registry} stored manifest ${referenceName(r)}:${selector} as ${echoed}, not ${digest}`, res.status, "PUT", referenceName(r), false);
    }
    opts.onProgress?.({ kind: "manifest", ref: formatReference(r), digest });
    return { ref: withDigest(r, digest), digest, blobs: counts };
  } finally {
    if (!opts.client) await client.close();
  }
}

function uniqueBlobs(blobs: PushBlob[]): PushBlob[] {
  const seen = new Map<string, PushBlob>();
  for (const b of blobs) if (!seen.has(b.digest)) seen.set(b.digest, b);
  return [...seen.values()];
}

// Mounting only works within one registry; a reference to another registry is not a candidate.
function mountRepository(m: string, target: Reference): string | undefined {
  const looksLikeRef = m.includes(".") || m.includes(":") || m.startsWith("localhost/");
  if (!looksLikeRef) return m === target.repository ? undefined : m;
  const r = parseReference(m);
  return r.registry === target.registry && r.repository !== target.repository ? r.repository : undefined;
}

async function pushBlob(
  client: RegistryClient,
  r: Reference,
  b: PushBlob,
  source: BlobSource,
  mountFrom: string[],
  chunkSize: number | undefined,
  onProgress: ((p: PushProgress) => void) | undefined,
): Promise<"present" | "mounted" | "uploaded"> {
  const what = `blob ${b.digest} in ${referenceName(r)}`;
  const head = await client.request(r.registry, {
    method: "HEAD",
    path: `/v2/${r.repository}/blobs/${b.digest}`,
    scopes: [pushScope(r)],
    ok: [200, 404],
    what,
  });
  await head.body.dump();
  if (head.status === 200) {
    onProgress?.({ kind: "blob", digest: b.digest, size: b.size, status: "present" });
    return "present";
  }

  let location: string | undefined;
  for (const from of mountFrom) {
    const res = await client.request(r.registry, {
      method: "POST",
      path: `/v2/${r.repository}/blobs/uploads/?mount=${encodeURIComponent(b.digest)}&from=${encodeURIComponent(from)}`,
      scopes: [pushScope(r), `repository:${from}:pull`],
      headers: { "content-length": "0" },
      ok: [201, 202],
      what: `mount of ${what} from ${from}`,
    });
    await res.body.dump();
    if (res.status === 201) {
      onProgress?.({ kind: "blob", digest: b.digest, size: b.size, status: "mounted" });
      return "mounted";
    }
    // 202: the registry did not have it there and opened an ordinary upload instead; use it.
    location = uploadLocation(res.headers, res.url, what, r);
    break;
  }

  onProgress?.({ kind: "blob", digest: b.digest, size: b.size, status: "started" });
  for (let restart = 0; ; restart++) {
    try {
      location ??= await startUpload(client, r, what);
      const sent = (done: number) => onProgress?.({ kind: "bytes", digest: b.digest, size: b.size, done });
      if (chunkSize) await uploadChunked(client, r, b, source, location, chunkSize, what, sent);
      else await uploadMonolithic(client, r, b, source, location, what, sent);
      break;
    } catch (e) {
      // A failed upload session cannot be trusted; a fresh one can.
      location = undefined;
      if (!(e instanceof RegistryError) || !(e.temporary || e.status === 404 || e.status === 400) || restart >= UPLOAD_RESTARTS) throw e;
      client.options.onNote?.(`${e.message}; starting the upload of ${b.digest} again`);
    }
  }
  onProgress?.({ kind: "blob", digest: b.digest, size: b.size, status: "uploaded" });
  return "uploaded";
}

async function startUpload(client: RegistryClient, r: Reference, what: string): Promise<string> {
  const res = await client.request(r.registry, {
    method: "POST",
    path: `/v2/${r.repository}/blobs/uploads/`,
    scopes: [pushScope(r)],
    headers: { "content-length": "0" },
    ok: [202],
    what: `upload of ${what}`,
  });
  await res.body.dump();
  return uploadLocation(res.headers, res.url, what, r);
}

function uploadLocation(headers: Record<string, string | string[] | undefined>, url: string, what: string, r: Reference): string {
  const loc = header(headers, "location");
  if (!loc) throw new RegistryError(`registry ${r.registry} opened an upload for ${what} without a Location`, 202, "POST", referenceName(r), false);
  return new URL(loc, url).toString();
}

function withQuery(location: string, key: string, value: string): string {
  const u = new URL(location);
  u.searchParams.set(key, value);
  return u.toString();
}

async function uploadMonolithic(client: RegistryClient, r: Reference, b: PushBlob, source: BlobSource, location: string, what: string, sent: (done: number) => void): Promise<void> {
  const res = await client.request(r.registry, {
    method: "PUT",
    path: withQuery(location, "digest", b.digest),
    scopes: [pushScope(r)],
    headers: { "content-type": "application/octet-stream", "content-length": String(b.size) },
    // pipeline, not pipe: a stored blob that fails its digest check must fail the request.
    body: () => pipeline(source.openBlob(b.digest), counting(sent), () => {}),
    ok: [201, 204],
    what: `upload of ${what}`,
  });
  await res.body.dump();
}

async function uploadChunked(
  client: RegistryClient,
  r: Reference,
  b: PushBlob,
  source: BlobSource,
  location: string,
  chunkSize: number,
  what: string,
  sent: (done: number) => void,
): Promise<void> {
  let offset = 0;
  let loc = location;
  // Each chunk is held in memory so a retried PATCH can send it again.
  for await (const chunk of chunks(source.openBlob(b.digest), chunkSize)) {
    const res = await client.request(r.registry, {
      method: "PATCH",
      path: loc,
      scopes: [pushScope(r)],
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(chunk.length),
        "content-range": `${offset}-${offset + chunk.length - 1}`,
      },
      body: () => chunk,
      ok: [202, 204],
      what: `chunk at ${offset} of ${what}`,
    });
    await res.body.dump();
    offset += chunk.length;
    sent(offset);
    loc = uploadLocation(res.headers, res.url, what, r);
  }
  if (offset !== b.size) {
    throw new RegistryError(`local blob ${b.digest} has ${offset} bytes, the manifest says ${b.size}`, undefined, "PATCH", referenceName(r), false);
  }
  const res = await client.request(r.registry, {
    method: "PUT",
    path: withQuery(loc, "digest", b.digest),
    scopes: [pushScope(r)],
    headers: { "content-length": "0" },
    ok: [201, 204],
    what: `upload of ${what}`,
  });
  await res.body.dump();
}

/** Passes a blob's bytes on to the request body, telling `sent` how many went so far. */
function counting(sent: (done: number) => void): Transform {
  let done = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      sent(done);
      cb(null, chunk);
    },
  });
}

async function* chunks(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const data of stream as AsyncIterable<Buffer>) {
    let buf = data;
    while (have + buf.length >= size) {
      const take = size - have;
      parts.push(buf.subarray(0, take));
      yield Buffer.concat(parts);
      parts = [];
      have = 0;
      buf = buf.subarray(take);
    }
    if (buf.length) {
      parts.push(buf);
      have += buf.length;
    }
  }
  if (have) yield Buffer.concat(parts);
}

export function pushScope(r: Reference): string {
  return `repository:${r.repository}:pull,push`;
}
