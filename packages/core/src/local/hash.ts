// Content digest of a local source (or a read-only bind): relative path, type, mode, symlink target
// and bytes of every entry; never mtime, never the absolute host path.
import { sha256Hex } from "../canonical.ts";
import type { StatCache } from "./statcache.ts";
import { globBase, localPath, walkLocalSync, type WalkOptions } from "./walk.ts";

export interface LocalDigest {
  /** "sha256:<hex>" over the whole entry list. */
  digest: string;
  /** rel → short fingerprint of that entry, kept in the state to name the files that changed. */
  files: Record<string, string>;
}

export function hashLocal(
  path: string,
  projectDir: string,
  o: WalkOptions,
  cache: StatCache,
): LocalDigest {
  const files: Record<string, string> = {};
  let text = "";
  const entries = walkLocalSync(path, projectDir, o);
  if (entries.length === 0 || entries[0].rel !== "") cache.walkedDir(localPath(o.glob ? globBase(path) : path, projectDir));
  for (const e of entries) {
    const content = e.type === "file" ? cache.fileDigest(e.abs, e.stat!) : e.type === "symlink" ? e.linkTarget! : "";
    // One line per entry; JSON-quoted strings keep newlines in names from forging lines.
    text += `${JSON.stringify(e.rel)} ${e.type} ${e.mode.toString(8)} ${JSON.stringify(content)}\n`;
    files[e.rel] = `${e.type[0]}${e.mode.toString(8)}:${e.type === "file" ? content.slice(0, 16) : content}`;
  }
  return { digest: "sha256:" + sha256Hex(text), files };
}
