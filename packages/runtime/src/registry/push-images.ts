// `up --push`: each exported stage's image to each of its tags. One client for the whole run, so
// connections and tokens are shared; blobs pushed to one repository are mounted into the next one
// on the same registry, and so are those of the base image when it came from that registry.
import type { Readable } from "node:stream";
import type { Digest } from "../oci/digest.ts";
import { isBuiltIndex, type BuiltImage, type BuiltOutput } from "../oci/manifest.ts";
import { Annotation, MediaType } from "../oci/types.ts";
import { RegistryClient, type RegistryClientOptions } from "./client.ts";
import { pushImage, type BlobSource, type PushProgress } from "./push.ts";
import type { TransferProgress } from "./transfer.ts";
import { formatReference, parseReference, type Reference } from "./reference.ts";

export interface PushTarget {
  /** References to push to, e.g. `registry.example.com/app:1.0`. */
  tags: string[];
  /** An image index is pushed as its images (by digest), then the index under each tag. */
  image: BuiltOutput;
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
  /** Each image's upload as a whole (see PushOptions.onTransfer). */
  onTransfer?: (p: TransferProgress) => void;
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
      const pushOne = async (ref: Reference, image: BuiltImage) => {
        const manifestBytes = await readAll(opts.source.openBlob(image.descriptor.digest));
        const baseName = image.manifest.annotations?.[Annotation.baseName];
        const mountFrom = [...(known.get(ref.registry) ?? [])];
        if (baseName) {
          try {
            const base = parseReference(baseName);
            if (base.registry === ref.registry) mountFrom.push(base.repository);
          } catch {
            // a base named by a layout path, not a reference: nothing to mount from
          }
        }
        return pushImage({
          ref,
          manifest: { bytes: manifestBytes, mediaType: image.descriptor.mediaType ?? MediaType.ociManifest },
          config: { digest: image.configDescriptor.digest, size: image.configDescriptor.size },
          layers: image.layers.map((l) => ({ digest: l.descriptor.digest, size: l.descriptor.size })),
          source: opts.source,
          mountFrom,
          client,
          onProgress: opts.onProgress && ((p) => opts.onProgress!(formatReference(ref), p)),
          onTransfer: opts.onTransfer,
        });
      };
      let res;
      if (isBuiltIndex(job.image)) {
        // A registry accepts an index only when every manifest it lists is there.
        const blobs = { present: 0, mounted: 0, uploaded: 0 };
        for (const image of job.image.images) {
          const r = await pushOne({ registry: job.ref.registry, repository: job.ref.repository, digest: image.descriptor.digest }, image);
          for (const k of ["present", "mounted", "uploaded"] as const) blobs[k] += r.blobs[k];
          remember(job.ref);
        }
        const pushed = await pushImage({
          ref: job.ref,
          manifest: { bytes: await readAll(opts.source.openBlob(job.image.descriptor.digest)), mediaType: MediaType.ociIndex },
          layers: [],
          source: opts.source,
          client,
          onProgress: opts.onProgress && ((p) => opts.onProgress!(formatReference(job.ref), p)),
        });
        res = { ...pushed, blobs };
      } else {
        res = await pushOne(job.ref, job.image);
      }
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
