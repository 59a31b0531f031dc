// Whether an extracted layer in the store is still what its tar says: the tar is applied afresh in
// tmp/ and both trees are compared entry by entry (type, mode, owner, size, content, link target,
// device). Times and xattrs are left out: a byte flipped or a file added, removed or chmodded is
// what a damaged store looks like.
import { createHash } from "node:crypto";
import { createReadStream, lstatSync, readdirSync, readlinkSync, type Stats } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Digest } from "../oci/digest.ts";
import type { Store } from "../store/store.ts";
import { applyLayer } from "./apply.ts";
import { layerDirGivesTar } from "./commit.ts";

/**
 * A checker for Store.verify: true when `dir` matches the layer's tar. A layer stored without any
 * tar (a stage's own, committed lazily) is checked by writing its tar again from `dir` and hashing it.
 */
export function layerMatchesTar(store: Store): (diffId: Digest, dir: string) => Promise<boolean | null> {
  return async (diffId, dir) => {
    if (!store.layerBlob(diffId)) return layerDirGivesTar(diffId, dir);
    const tar = store.openLayerTar(diffId);
    const fresh = store.tmpDir("verify");
    try {
      const { diffId: got } = await applyLayer(tar, fresh, { mode: "overlay" });
      // A tar that no longer hashes to its diff-id is the blob check's business, not this one's.
      if (got !== diffId) return null;
      return (await fingerprint(fresh)) === (await fingerprint(dir));
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  };
}

async function fingerprint(root: string): Promise<string> {
  const all = createHash("sha256");
  const visit = async (rel: string): Promise<void> => {
    const path = rel ? join(root, rel) : root;
    const st = lstatSync(path);
    // The root itself is a dir mstage made (tmp/), not part of the layer's content.
    if (rel) all.update(`${rel}\0${kind(st)}\0${st.mode}\0${st.uid}\0${st.gid}\0`);
    if (st.isFile()) {
      all.update(`${st.size}\0`);
      for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) all.update(chunk);
    } else if (st.isSymbolicLink()) all.update(readlinkSync(path));
    else if (st.isCharacterDevice() || st.isBlockDevice()) all.update(String(st.rdev));
    all.update("\n");
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) await visit(rel ? join(rel, name) : name);
  };
  await visit("");
  return all.digest("hex");
}

function kind(st: Stats): string {
  return st.isFile() ? "f" : st.isDirectory() ? "d" : st.isSymbolicLink() ? "l" : st.isCharacterDevice() ? "c" : st.isBlockDevice() ? "b" : st.isFIFO() ? "p" : "s";
}
