// `up --push`: each exported stage's image to each of its tags. One client for the whole run, so
// connections and tokens are shared; blobs pushed to one repository are mounted into the next one
// on the same registry, and so are those of the base image when it came from that registry.
import type { Readable } from "node:stream";
import type { Digest } from "../oci/digest.ts";
import type { BuiltImage } from "../oci/manifest.ts";
import { Annotation, MediaType } from "../oci/types.ts";
import { RegistryClient, type RegistryClientOptions } from "./client.ts";
import { pushImage, type BlobSource, type PushProgress } from "./push.ts";
import { formatReference, parseReference, type Reference } from "./reference.ts";

export interface PushTarget {
  /** References to push to, e.g. `registry.example.com/app:1.0`. */
  tags: string[];
  image: BuiltImage;
}

export interface PushedTag {
  ref: string;
  digest: Digest;
  blobs: { present: number; mounted: number; uploaded: number };
}

export interface PushImagesOptions extends RegistryClientOptions {
  /** Where blob bytes come from: the store. */
  source: BlobSource;
  onProgress?: (ref: string, p: PushProgress) => void;
  client?: RegistryClient;
}

/** Pushes every image to every tag; tags are parsed first, so a bad one fails before any upload. */
export async function pushImages(targets: PushTarget[], opts: PushImagesOptions): Promise<PushedTag[]> {
  const jobs = targets.flatMap((t) => t.tags.map((tag) => ({ ref: parseReference(tag), image: t.image })));
  const client = opts.client ?? new RegistryClient(opts);
  // repositories per registry that hold (or will hold) the blobs: the mount candidates.
  const known = new Map<string, Set<string>>();
  const remember = (r: Reference) => {
    let s = known.get(r.registry);
    if (!s) known.set(r.registry, (s = new Set()));
    s.add(r.repository);
  };
  try {
    const results: PushedTag[] = [];
    // One tag after another: each later tag can mount what the earlier ones uploaded.
    for (const job of jobs) {
      const manifestBytes = await readAll(opts.source.openBlob(job.image.descriptor.digest));
      const baseName = job.image.manifest.annotations?.[Annotation.baseName];
      const mountFrom = [...(known.get(job.ref.registry) ?? [])];
      if (baseName) {
        try {
          const base = parseReference(baseName);
          if (base.registry === job.ref.registry) mountFrom.push(base.repository);
        } catch {
          // a base named by a layout path, not a reference: nothing to mount from
        }
      }
      const res = await pushImage({
        ref: job.ref,
        manifest: { bytes: manifestBytes, mediaType: job.image.descriptor.mediaType ?? MediaType.ociManifest },
        config: { digest: job.image.configDescriptor.digest, size: job.image.configDescriptor.size },
        layers: job.image.layers.map((l) => ({ digest: l.descriptor.digest, size: l.descriptor.size })),
        source: opts.source,
        mountFrom,
        client,
        onProgress: opts.onProgress && ((p) => opts.onProgress!(formatReference(job.ref), p)),
      });
      remember(job.ref);
      results.push({ ref: formatReference(job.ref), digest: res.digest, blobs: res.blobs });
    }
    return results;
  } finally {
    if (!opts.client) await client.close();
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}
