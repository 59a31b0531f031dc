// What an image in an OCI layout holds, read straight from its layer tars (our own reader, so pax
// xattr values keep their exact bytes): every path after applying the layers in order with their
// whiteouts, as one line of text with its type, mode, owner, content digest or link target, xattrs
// and hardlink group. No mtimes. Used to compare mstage's images with buildah's entry by entry.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";

export interface ImageEntry {
  path: string;
  type: "file" | "dir" | "symlink" | "link" | "other";
  mode: number;
  uid: number;
  gid: number;
  /** sha256 of a file's bytes, or a symlink's target, or a hardlink's target path. */
  content: string;
  /** name → hex value, sorted by name. */
  xattrs: Record<string, string>;
}

function blob(layout: string, digest: string): Buffer {
  return readFileSync(join(layout, "blobs", ...digest.split(":")));
}

/** The manifest and config of `ref` (an `org.opencontainers.image.ref.name`) in a layout. */
export function readImage(layout: string, ref: string): { manifest: any; config: any } {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const desc = index.manifests.find((m: any) => m.annotations?.["org.opencontainers.image.ref.name"] === ref);
  if (!desc) throw new Error(`${layout} has no ref ${ref}`);
  const manifest = JSON.parse(blob(layout, desc.digest).toString());
  return { manifest, config: JSON.parse(blob(layout, manifest.config.digest).toString()) };
}

function field(h: Buffer, off: number, len: number): string {
  const s = h.subarray(off, off + len);
  const nul = s.indexOf(0);
  return (nul < 0 ? s : s.subarray(0, nul)).toString("utf8");
}

function octal(h: Buffer, off: number, len: number): number {
  if (h[off]! & 0x80) return Number(h.readBigUInt64BE(off + len - 8)); // base-256
  const s = field(h, off, len).trim();
  return s ? parseInt(s, 8) : 0;
}

/** pax records: "LEN key=value\n", values as raw bytes. */
function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = Number(data.subarray(pos, sp).toString());
    if (!len) break;
    const rec = data.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    out.set(rec.subarray(0, eq).toString("utf8"), rec.subarray(eq + 1));
    pos += len;
  }
  return out;
}

/** The entries of one (uncompressed) layer tar, in archive order. */
export function tarEntries(tar: Buffer): ImageEntry[] {
  const out: ImageEntry[] = [];
  let pos = 0;
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  while (pos + 512 <= tar.length) {
    const h = tar.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    const size = octal(h, 124, 12);
    const flag = String.fromCharCode(h[156]!);
    const data = tar.subarray(pos + 512, pos + 512 + size);
    pos += 512 + Math.ceil(size / 512) * 512;
    if (flag === "x") {
      pax = parsePax(data);
      continue;
    }
    if (flag === "g") continue;
    if (flag === "L") {
      longName = data.toString("utf8").replace(/\0+$/, "");
      continue;
    }
    if (flag === "K") {
      longLink = data.toString("utf8").replace(/\0+$/, "");
      continue;
    }
    const prefix = field(h, 345, 155);
    let name = pax.get("path")?.toString("utf8") ?? longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    const linkname = pax.get("linkpath")?.toString("utf8") ?? longLink ?? field(h, 157, 100);
    name = name.replace(/^(\.\/)+/, "").replace(/^\/+/, "").replace(/\/+$/, "");
    const xattrs: Record<string, string> = {};
    for (const [k, v] of [...pax].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (k.startsWith("SCHILY.xattr.")) xattrs[k.slice(13)] = v.toString("hex");
    }
    const type = flag === "0" || flag === "\0" || flag === "7" ? "file" : flag === "5" ? "dir" : flag === "2" ? "symlink" : flag === "1" ? "link" : "other";
    const content =
      type === "file" ? "sha256:" + createHash("sha256").update(data).digest("hex")
      : type === "symlink" ? "-> " + linkname
      : type === "link" ? linkname.replace(/^(\.\/)+/, "").replace(/^\/+/, "")
      : "";
    out.push({
      path: name === "." ? "" : name,
      type,
      mode: octal(h, 100, 8) & 0o7777,
      uid: Number(pax.get("uid")?.toString() ?? octal(h, 108, 8)),
      gid: Number(pax.get("gid")?.toString() ?? octal(h, 116, 8)),
      content,
      xattrs,
    });
    pax = new Map();
    longName = longLink = undefined;
  }
  return out;
}

/** Every path of the image after all its layers, with whiteouts applied; hardlinks resolved to their target's metadata. */
export function imageEntries(layout: string, ref: string): Map<string, ImageEntry> {
  const { manifest } = readImage(layout, ref);
  const fs = new Map<string, ImageEntry>();
  const removeBelow = (dir: string, self: boolean) => {
    for (const p of [...fs.keys()]) if ((self && p === dir) || p.startsWith(dir === "" ? "" : dir + "/")) if (p !== dir || self) fs.delete(p);
  };
  for (const layer of manifest.layers) {
    let tar = blob(layout, layer.digest);
    if (tar[0] === 0x1f && tar[1] === 0x8b) tar = gunzipSync(tar);
    for (const e of tarEntries(tar)) {
      const base = e.path.split("/").pop()!;
      const parent = e.path.includes("/") ? e.path.slice(0, e.path.lastIndexOf("/")) : "";
      if (base === ".wh..wh..opq") {
        removeBelow(parent, false);
        continue;
      }
      if (base.startsWith(".wh.")) {
        removeBelow(parent ? `${parent}/${base.slice(4)}` : base.slice(4), true);
        continue;
      }
      if (e.type !== "dir") removeBelow(e.path, false);
      fs.set(e.path, e);
    }
  }
  return fs;
}

/**
 * The image as sorted lines "path type mode uid:gid content xattrs links=…", where a hardlink
 * shows its target's metadata and every member of a hardlink group lists the whole group.
 */
export function entryLines(entries: Map<string, ImageEntry>, skip: (path: string) => boolean = () => false): string[] {
  const groups = new Map<string, string[]>();
  for (const e of entries.values()) {
    if (e.type !== "link") continue;
    const g = groups.get(e.content) ?? [e.content];
    g.push(e.path);
    groups.set(e.content, g);
  }
  const groupOf = new Map<string, string[]>();
  for (const g of groups.values()) for (const p of g) groupOf.set(p, [...g].sort());
  const lines: string[] = [];
  for (const e of [...entries.values()].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    if (e.path === "" || skip(e.path)) continue;
    const meta = e.type === "link" ? entries.get(e.content) ?? e : e;
    const type = e.type === "link" ? meta.type : e.type;
    const x = Object.entries(meta.xattrs).map(([k, v]) => `${k}=${v}`).join(",");
    const links = groupOf.get(e.path);
    lines.push(`/${e.path} ${type} ${meta.mode.toString(8).padStart(4, "0")} ${meta.uid}:${meta.gid} ${meta.content}${x ? " xattrs:" + x : ""}${links ? " links=" + links.join(",") : ""}`);
  }
  return lines;
}
