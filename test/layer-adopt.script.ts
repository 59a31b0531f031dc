// Inside mstage's user namespace (see layer-userns.helper.ts): extracts a layer's tar (or its gzip)
// afresh and lists both trees entry by entry, times, link counts and xattrs included, for the test
// to compare.
//   argv: WORKDIR LAYER_DIR LAYER_BLOB
import { createReadStream, lstatSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { applyLayer } from "../packages/runtime/src/layer/apply.ts";
import { readTreeXattrs } from "../packages/runtime/src/layer/xattr.ts";
import { treeListing } from "./helpers/listing.ts";

const [work, layerDir, tar] = process.argv.slice(2);

async function detailed(dir: string): Promise<string[]> {
  const xattrs = await readTreeXattrs(dir);
  const attrs = (rel: string) => (xattrs.get(rel) ?? []).map(([n, v]) => `${n}=${v.toString("hex")}`).sort().join(",");
  return [
    `. xattrs=${attrs("")}`,
    ...treeListing(dir).map((line) => {
      const p = line.split(" ")[0]!;
      const st = lstatSync(join(dir, p));
      // Whiteouts share one inode per layer, so they have no time of their own (overlayfs reads only the device number).
      const mtime = st.isCharacterDevice() ? "" : ` mtime=${st.mtimeMs}`;
      return `${line}${mtime}${st.isDirectory() ? "" : ` links=${st.nlink}`} xattrs=${attrs(p)}`;
    }),
  ];
}

mkdirSync(work, { recursive: true });
const fresh = join(work, "fresh");
mkdirSync(fresh);
const { diffId } = await applyLayer(createReadStream(tar!), fresh, { mode: "overlay" });
const ino = (p: string) => String(lstatSync(join(layerDir!, p)).ino);
console.log(
  JSON.stringify({
    adopted: await detailed(layerDir!),
    extracted: await detailed(fresh),
    diffId,
    // The step wrote the inode number of /made/file as the sandbox saw it: the same inode in the
    // layer dir means the upper dir itself became the layer, not an extraction of its tar.
    sameInode: readFileSync(join(layerDir!, "made/ino"), "utf8").trim() === ino("made/file"),
  }),
);
rmSync(work, { recursive: true, force: true });
