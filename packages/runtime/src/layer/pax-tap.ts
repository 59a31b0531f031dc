// A pass-through over an uncompressed tar stream that hashes every byte (the layer's diff-id) and
// keeps the raw records of each pax extended header. tar-stream decodes pax values as UTF-8, which
// mangles binary xattr values (security.capability); apply takes the exact bytes from here instead.
import { createHash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { digestOf, type Digest } from "../oci/digest.ts";

const BLOCK = 512;

function parseSize(h: Buffer): number {
  if (h[124] & 0x80) {
    // GNU base-256 for sizes over 8 GiB.
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + h[i];
    return n;
  }
  const s = h.toString("latin1", 124, 136).replace(/\0.*$/s, "").trim();
  return s ? parseInt(s, 8) : 0;
}

/** "len key=value\n" records, values as raw bytes. */
export function parsePaxRecords(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = parseInt(buf.toString("latin1", off, sp), 10);
    if (!len || off + len > buf.length) break;
    const rec = buf.subarray(sp + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(rec.subarray(0, eq).toString("utf8"), Buffer.from(rec.subarray(eq + 1)));
    off += len;
  }
  return out;
}

export class PaxTap extends Transform {
  /** Raw records of each per-entry pax header ('x'), in archive order. */
  readonly paxQueue: Array<Map<string, Buffer>> = [];
  /** Hashes the bytes, unless a sink takes them to be hashed elsewhere (digest() is then not known here). */
  private readonly hash;
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  /** Bytes of entry data (with padding) still to pass over. */
  private skip = 0;
  /** Pax header data being collected, and how much of it (with padding) is expected. */
  private pax: Buffer[] | null = null;
  private paxLeft = 0;
  private paxSize = 0;
  /** A pax "size" record overrides the next header's size field. */
  private sizeOverride: number | null = null;

  constructor(private readonly sink?: (chunk: Buffer) => void) {
    super();
    this.hash = sink ? undefined : createHash("sha256");
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.sink) this.sink(chunk);
    else this.hash!.update(chunk);
    this.scan(chunk);
    cb(null, chunk);
  }

  digest(): Digest {
    if (!this.hash) throw new Error("PaxTap: the bytes went to a sink, which has their digest");
    return digestOf(this.hash);
  }

  private scan(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.pax) {
        const n = Math.min(this.paxLeft, chunk.length - off);
        this.pax.push(chunk.subarray(off, off + n));
        this.paxLeft -= n;
        off += n;
        if (this.paxLeft === 0) {
          const records = parsePaxRecords(Buffer.concat(this.pax).subarray(0, this.paxSize));
          this.pax = null;
          this.paxQueue.push(records);
          const size = records.get("size");
          this.sizeOverride = size ? Number(size.toString("latin1")) : null;
        }
      } else if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - off);
        this.skip -= n;
        off += n;
      } else {
        const n = Math.min(BLOCK - this.headerFill, chunk.length - off);
        chunk.copy(this.header, this.headerFill, off, off + n);
        this.headerFill += n;
        off += n;
        if (this.headerFill === BLOCK) {
          this.headerFill = 0;
          this.onHeader(this.header);
        }
      }
    }
  }

  private onHeader(h: Buffer): void {
    if (h.every((b) => b === 0)) return;
    const size = parseSize(h);
    const padded = size + ((BLOCK - (size % BLOCK)) % BLOCK);
    const type = String.fromCharCode(h[156]);
    if (type === "x") {
      this.pax = [];
      this.paxSize = size;
      this.paxLeft = padded;
      if (padded === 0) {
        this.pax = null;
        this.paxQueue.push(new Map());
      }
      return;
    }
    if (type === "g" || type === "L" || type === "K") {
      this.skip = padded;
      return;
    }
    const data = this.sizeOverride ?? size;
    this.sizeOverride = null;
    this.skip = data + ((BLOCK - (data % BLOCK)) % BLOCK);
  }
}
