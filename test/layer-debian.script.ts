// Inside mstage's user namespace (see layer-userns.helper.ts): commits a real Debian minbase rootfs,
// extracts the layer as an overlay lower dir, and commits that again. Prints JSON for the test.
//   argv: WORKDIR
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { commitLayer, commitLayerToStore } from "../packages/runtime/src/layer/commit.ts";
import { Store } from "../packages/runtime/src/store/store.ts";
import { ensureLayerExtracted } from "../packages/runtime/src/layer/extract.ts";
import { debianMinbase } from "./helpers/rootfs.ts";
import { treeListing } from "./helpers/listing.ts";

const work = process.argv[2];


const rootfs = debianMinbase();
const store = await Store.open(join(work, "store"));
const layer = await commitLayerToStore(store, rootfs, { sourceDateEpoch: 0 });
const extracted = await ensureLayerExtracted(store, layer.diffId, () => store.openBlob(layer.diffId));
const hash = createHash("sha256");
for await (const c of commitLayer(extracted, { sourceDateEpoch: 0 })) hash.update(c);
const original = treeListing(rootfs, { links: true });
const copy = treeListing(extracted, { links: true });
const entries = execFileSync("tar", ["--numeric-owner", "-tvf", store.blobPath(layer.diffId)], { encoding: "utf8", maxBuffer: 256 << 20 }).split("\n").filter(Boolean);
console.log(
  JSON.stringify({
    diffId: layer.diffId,
    recommitted: "sha256:" + hash.digest("hex"),
    entries: entries.length,
    same: JSON.stringify(original) === JSON.stringify(copy),
    firstDifference: original.find((l, i) => l !== copy[i]) ?? null,
    setuid: entries.filter((l) => /^-..s/.test(l)).map((l) => l.split(/\s+/).at(-1)),
    hardlinks: entries.filter((l) => l.startsWith("h")).length,
    notRoot: entries.filter((l) => !/ 0\/0 /.test(l)).map((l) => l.split(/\s+/).slice(1, 2).concat(l.split(/\s+/).at(-1)!).join(" ")),
  }),
);
rmSync(work, { recursive: true, force: true });
