// A directory committed as a layer into a fresh store, the way `mstage up` commits a stage's upper
// dir: tar written, hashed and fsynced into blobs/. Bundled by bench/compare.sh (case commit).
//   node commit.mjs TREE STORE
import { commitLayerToStore, Store } from "@mstage/runtime";

const [tree, storeDir] = process.argv.slice(2);
if (!tree || !storeDir) throw new Error("usage: commit.mjs TREE STORE");
const store = await Store.open(storeDir);
const layer = await commitLayerToStore(store, tree, { sourceDateEpoch: 0 });
console.log(`${layer.diffId} ${(layer.size / 1048576).toFixed(0)} MiB`);
