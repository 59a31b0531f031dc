// Inside mstage's user namespace (see layer-userns.helper.ts): fills a store with two results whose
// extracted layers hold a 0700 directory of uid 1000, unreadable and undeletable from outside.
//   argv: WORKDIR
import { chmodSync, chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { commitLayerToStore } from "../packages/runtime/src/layer/commit.ts";
import { sha256Digest } from "../packages/runtime/src/oci/digest.ts";
import { Store } from "../packages/runtime/src/store/store.ts";
import { ensureLayerExtracted } from "../packages/runtime/src/layer/extract.ts";

const work = process.argv[2];
const store = await Store.open(join(work, "store"));
for (const stage of ["build", "app"]) {
  const up = join(work, "up-" + stage);
  mkdirSync(join(up, "home/user/private"), { recursive: true });
  writeFileSync(join(up, "home/user/private/data"), stage.repeat(10000));
  chownSync(join(up, "home/user/private/data"), 1000, 1000);
  chownSync(join(up, "home/user/private"), 1000, 1000);
  chmodSync(join(up, "home/user/private"), 0o700);
  const layer = await commitLayerToStore(store, up, { sourceDateEpoch: 0 });
  await ensureLayerExtracted(store, layer.diffId, () => store.openBlob(layer.diffId));
  const key = sha256Digest(stage);
  await store.putResult(key, {
    key,
    layers: [layer],
    config: { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layer.diffId] } },
    history: [],
    created: new Date().toISOString(),
    stage,
    project: "/src/project",
  });
}
await store.writeBlob(Buffer.from("nobody references this"));
console.log(JSON.stringify({ store: store.root }));
