// A tree as text, to show two trees hold the same files: every entry's path, type, content digest
// (or link target, or device number), mode, owner and size. No times: layers clamp them.
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/** @param o.links add each file's link count, so hardlinked files must stay hardlinked */
export function treeListing(dir: string, o: { links?: boolean } = {}): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(rel ? join(dir, rel) : dir).sort()) {
      const p = rel ? rel + "/" + name : name;
      const st = lstatSync(join(dir, p));
      let what: string;
      if (st.isDirectory()) what = "dir";
      else if (st.isSymbolicLink()) what = "link->" + readlinkSync(join(dir, p));
      else if (st.isCharacterDevice()) what = `chr ${st.rdev}`;
      else if (st.isFile()) what = "file " + createHash("sha256").update(readFileSync(join(dir, p))).digest("hex").slice(0, 16);
      else what = "other";
      const size = st.isFile() ? ` ${st.size}${o.links ? ` links=${st.nlink}` : ""}` : "";
      out.push(`${p} ${what} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}${size}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk("");
  return out;
}
