// A base's identity: what goes into the key of a stage that starts from an image, an OCI layout or
// a debian() base. Two implementations give the same identities: LockedBaseIdentity here (offline:
// images.lock and the layout on disk, what `plan` uses) and the runtime's BaseProvider (online:
// resolves tags through registries and makes debian() rootfs, updating images.lock as it goes), so
// a `plan` after `up` finds every stage cached.
import { canonicalJson, sha256Hex } from "./canonical.ts";
import { debianLockKey, type LockFile } from "./images-lock.ts";
import type { DebianBase, ImageBase, OciBase, Stage } from "./model.ts";
import { ociBaseEntry } from "./oci-layout.ts";

export type ExternalBase = ImageBase | OciBase | DebianBase;

export interface BaseIdentity {
  /**
   * The identity of an external base (a manifest digest, or a digest of a debian() base's arguments
   * and package versions). `undefined` (or "") means not resolved yet: the stage is planned as changed.
   */
  resolveBase(base: ExternalBase, stage: Stage): Promise<string | undefined>;
}

/** A debian() base is its canonical arguments plus the package versions it resolved to (null: none pinned yet). */
export function debianIdentity(base: DebianBase, versions: Readonly<Record<string, string>> | null): string {
  // amd64 unnamed: the identities of bases made before platforms were honoured stay valid.
  const platform = base.platform && base.platform !== "linux/amd64" ? base.platform : undefined;
  return "sha256:" + sha256Hex(canonicalJson({ suite: base.suite, variant: base.variant, mirror: base.mirror, packages: base.packages, pinned: versions, platform }));
}

/** The digest an image reference pins by itself (`name@sha256:…`), if it does. */
export function pinnedByRef(ref: string): string | undefined {
  return /@(sha256:[a-f0-9]{64})$/.exec(ref)?.[1];
}

export interface LockedBaseOptions {
  projectDir: string;
  lock: LockFile;
  /** Asked for an image tag that images.lock does not pin (or every tag, with `refresh`). */
  resolveTag?: (base: ImageBase, stage: Stage) => Promise<string | undefined>;
  refresh?: boolean;
}

/** Identities from images.lock and the OCI layouts on disk, with no registry unless `resolveTag` is given. */
export class LockedBaseIdentity implements BaseIdentity {
  constructor(private readonly o: LockedBaseOptions) {}

  async resolveBase(base: ExternalBase, stage: Stage): Promise<string | undefined> {
    switch (base.kind) {
      case "image": {
        const pinned = pinnedByRef(base.ref);
        if (pinned) return pinned;
        const { lock, resolveTag, refresh } = this.o;
        if (refresh && resolveTag) return (await resolveTag(base, stage)) ?? lock.images[base.ref];
        return lock.images[base.ref] ?? (resolveTag ? await resolveTag(base, stage) : undefined);
      }
      case "oci":
        return ociBaseEntry(base, this.o.projectDir, stage.spec.platform).entry.digest;
      case "debian":
        return debianIdentity(base, this.o.lock.debian[debianLockKey(base)]?.packages ?? null);
    }
  }
}
