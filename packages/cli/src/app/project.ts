// What `plan` (and `up`) need besides the config: the plan context wired to the project's state,
// images.lock and the store, with nothing from @mstage/runtime loaded (a no-op plan stays cheap).
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import {
  RegistryError,
  StoreLayout,
  UserError,
  canonicalJson,
  debianLockKey,
  isSha256Digest,
  layerInStore,
  loadState,
  readStoredResult,
  readLock,
  type DebianBase,
  type ImageBase,
  type LockFile,
  type OciBase,
  type PlanContext,
  type Stage,
} from "@mstage/core";

export interface PlanContextOptions {
  projectDir: string;
  /** Absolute store directory. */
  store: string;
  noCache?: boolean | string;
  /** Resolves an image tag that images.lock does not pin (the registry client, in `up`). */
  resolveImage?: (base: ImageBase, stage: Stage) => Promise<string | undefined>;
  /** --refresh: ask resolveImage even for tags that images.lock pins. */
  refresh?: boolean;
}

export async function createPlanContext(o: PlanContextOptions): Promise<PlanContext & { lock: LockFile; warnings: string[] }> {
  const [state, lock] = await Promise.all([loadState(o.projectDir), readLock(o.projectDir)]);
  const warnings: string[] = [];
  // A registry that cannot be reached leaves the tag unresolved ("not resolved yet"): plan still
  // answers offline, and up reports the real error. A registry that answers (404, 401) is an error.
  // Each ref is asked once per run, however many stages start from it.
  const resolved = new Map<string, Promise<string | undefined>>();
  const ask = async (base: ImageBase, stage: Stage): Promise<string | undefined> => {
    try {
      return await o.resolveImage!(base, stage);
    } catch (e) {
      if (!(e instanceof RegistryError) || (e.status !== undefined && !e.temporary)) throw e;
      warnings.push(`${base.ref} not resolved: ${e.message}`);
      return undefined;
    }
  };
  const resolveImage =
    o.resolveImage &&
    ((base: ImageBase, stage: Stage): Promise<string | undefined> => {
      const key = `${base.ref}\0${base.platform ?? ""}`;
      let p = resolved.get(key);
      if (!p) resolved.set(key, (p = ask(base, stage)));
      return p;
    });
  // Stages of one chain share their lower layers: each is looked for once per run.
  const layerPresent = new Map<string, boolean>();
  return {
    projectDir: o.projectDir,
    state,
    lock,
    warnings,
    noCache: o.noCache,
    statCachePath: new StoreLayout(o.store).statCache(o.projectDir),
    async hasResult(layerKey) {
      return storedResultUsable(o.store, layerKey, layerPresent);
    },
    async resolveBase(base, stage) {
      switch (base.kind) {
        case "image": {
          // A digest reference pins itself; a tag needs images.lock (or the registry, in `up`).
          const pinned = /@(sha256:[a-f0-9]{64})$/.exec(base.ref)?.[1];
          if (pinned) return pinned;
          if (o.refresh && resolveImage) return (await resolveImage(base, stage)) ?? lock.images[base.ref];
          return lock.images[base.ref] ?? (resolveImage ? await resolveImage(base, stage) : undefined);
        }
        case "oci":
          return ociManifestDigest(base, o.projectDir);
        case "debian":
          return debianIdentity(base, lock);
      }
    },
  };
}

/**
 * Whether the store holds a usable result for `layerKey`: core's readStoredResult, the rule the
 * runtime's Store.getResult applies for `up`, read straight from the files so that plan need not
 * load the runtime. Unlike getResult it does not mark the result used; `seen` memoises layers.
 */
export function storedResultUsable(store: string, layerKey: string, seen = new Map<string, boolean>()): boolean {
  const layout = new StoreLayout(store);
  const hasLayer = (diffId: string): boolean => {
    let present = seen.get(diffId);
    if (present === undefined) seen.set(diffId, (present = layerInStore(layout, diffId)));
    return present;
  };
  try {
    return readStoredResult(layout, layerKey, hasLayer) !== null;
  } catch {
    return false;
  }
}

/** The manifest digest a local OCI layout gives for `ref` (or its only image). */
export function ociManifestDigest(base: OciBase, projectDir: string): string {
  const dir = isAbsolute(base.layout) ? base.layout : resolve(projectDir, base.layout);
  let index: { manifests?: { digest: string; annotations?: Record<string, string> }[] };
  try {
    index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8"));
  } catch (e) {
    throw new UserError(`oci(${JSON.stringify(base.layout)}): cannot read ${join(dir, "index.json")}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "not an OCI image layout" : (e as Error).message}`);
  }
  const manifests = Array.isArray(index.manifests) ? index.manifests : [];
  for (const m of manifests) {
    if (!isSha256Digest(m?.digest)) {
      throw new UserError(`oci(${JSON.stringify(base.layout)}): ${join(dir, "index.json")} names a manifest as ${JSON.stringify(m?.digest)}, which is not a sha256 digest (sha256:<64 hex digits>)`);
    }
  }
  const refName = (m: (typeof manifests)[number]) => m.annotations?.["org.opencontainers.image.ref.name"];
  if (base.ref !== undefined) {
    const m = manifests.find((x) => refName(x) === base.ref);
    if (!m) {
      const names = manifests.map(refName).filter(Boolean);
      throw new UserError(`oci(${JSON.stringify(base.layout)}, ${JSON.stringify(base.ref)}): no image with that ref; the layout has: ${names.join(", ") || "no named refs"}`);
    }
    return m.digest;
  }
  if (manifests.length !== 1) {
    throw new UserError(`oci(${JSON.stringify(base.layout)}): the layout holds ${manifests.length} images; name one: oci(${JSON.stringify(base.layout)}, "<ref>")`);
  }
  return manifests[0].digest;
}

/** A debian() base is its canonical arguments plus the package versions images.lock pins. */
export function debianIdentity(base: DebianBase, lock: LockFile): string {
  const key = debianLockKey(base);
  const pinned = lock.debian[key]?.packages ?? null;
  return "sha256:" + sha256Hex(canonicalJson({ suite: base.suite, variant: base.variant, mirror: base.mirror, packages: base.packages, pinned }));
}

function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}
