// A directory committed as a layer into a fresh store. Bundled by bench/compare.sh (case commit).
//   node commit.mjs stage UPPER STORE   a stage's commit, as `mstage up` does it: the upper dir
//                                       hashed as its tar and kept as the extracted layer (no tar
//                                       written; it is written when an export needs it)
//   node commit.mjs tar TREE STORE      the tar written, hashed and fsynced into blobs/ (debian()
//                                       bases and squashes commit this way)
import { commitAndAdopt, commitLayerToStore, Store } from "@mstage/runtime";

const [how, dir, storeDir] = process.argv.slice(2);
if ((how !== "stage" && how !== "tar") || !dir || !storeDir) throw new Error("usage: commit.mjs stage|tar DIR STORE");
const store = await Store.open(storeDir);
const commit = how === "stage" ? commitAndAdopt : commitLayerToStore;
const layer = await commit(store, dir, { sourceDateEpoch: 0 });
console.log(`${layer.diffId} ${(layer.size / 1048576).toFixed(0)} MiB`);
