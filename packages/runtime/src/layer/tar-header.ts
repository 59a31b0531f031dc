// Encodes tar headers (POSIX ustar, plus a pax extended header when a field does not fit). Written
// here rather than with tar-stream's pack: pack writes pax values as UTF-8 strings, which corrupts
// binary xattr values such as security.capability, and it cannot emit a pax header of our choosing.
// Reading layers still goes through tar-stream (apply.ts).

export type TarType = "file" | "link" | "symlink" | "directory" | "fifo";

const TYPEFLAG: Record<TarType, number> = { file: 0x30, link: 0x31, symlink: 0x32, directory: 0x35, fifo: 0x36 };

export interface TarHeader {
  /** Archive path, without a leading "./"; directories end with "/". */
  name: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  linkname?: string;
  /** Extra pax records (e.g. "SCHILY.xattr.security.capability"), raw bytes. */
  pax?: Array<[key: string, value: Buffer]>;
}

const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

/** `value` as width-1 octal digits and a NUL, as ustar expects (byte by byte: Buffer.write is a native call each time). */
function writeOctal(buf: Buffer, off: number, width: number, value: number): void {
  let v = value;
  for (let i = off + width - 2; i >= off; i--) {
    buf[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
  buf[off + width - 1] = 0;
}

/** What every ustar block has: the magic and version, devmajor/devminor 0, and the checksum field as spaces while summing. */
const TEMPLATE = (() => {
  const b = Buffer.alloc(512);
  b.write("ustar\u000000", 257, 8, "latin1");
  writeOctal(b, 329, 8, 0);
  writeOctal(b, 337, 8, 0);
  b.fill(0x20, 148, 156);
  return b;
})();

const EMPTY = Buffer.alloc(0);

/** Splits a name into ustar prefix (≤155 bytes) and name (≤100 bytes), or null if it cannot be. */
function splitName(name: Buffer): [prefix: Buffer, name: Buffer] | null {
  if (name.length <= 100) return [EMPTY, name];
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== 0x2f) continue;
    const rest = name.length - i - 1;
    if (rest > 100) return null;
    if (i <= 155 && rest > 0) return [name.subarray(0, i), name.subarray(i + 1)];
  }
  return null;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

interface UstarFields {
  name: Buffer;
  prefix: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname: Buffer;
}

function ustar(fields: UstarFields): Buffer {
  // Pooled (512 bytes is below Buffer.poolSize / 2).
  const b = Buffer.allocUnsafe(512);
  b.set(TEMPLATE);
  b.set(fields.name, 0);
  b.set(fields.linkname, 157);
  b.set(fields.prefix, 345);
  return finishUstar(b, 0, fields.mode, fields.uid, fields.gid, fields.size, fields.mtime, fields.typeflag);
}

/** The numeric fields, type and checksum of the block at `off` of `b`, whose template and names are in place. */
function finishUstar(b: Buffer, off: number, mode: number, uid: number, gid: number, size: number, mtime: number, typeflag: number): Buffer {
  writeOctal(b, off + 100, 8, mode & 0o7777);
  writeOctal(b, off + 108, 8, uid);
  writeOctal(b, off + 116, 8, gid);
  writeOctal(b, off + 124, 12, size);
  writeOctal(b, off + 136, 12, mtime);
  b[off + 156] = typeflag;
  let sum = 0;
  for (let i = off; i < off + 512; i++) sum += b[i]!;
  // Six octal digits, a NUL and a space.
  writeOctal(b, off + 148, 7, sum);
  b[off + 155] = 0x20;
  return b;
}

/**
 * Writes the header of an entry that needs only one ustar block (no pax: name and link name of at
 * most 100 bytes, numbers that fit) straight into `buf` at `off`, and returns true; returns false
 * (writing nothing that matters) for any other, which encodeHeader() then encodes. The same bytes
 * as encodeHeader() gives, without its Buffers and objects: a layer has one header per entry.
 */
export function writeSimpleHeader(
  buf: Buffer,
  off: number,
  name: string,
  type: TarType,
  mode: number,
  uid: number,
  gid: number,
  size: number,
  mtime: number,
  linkname = "",
): boolean {
  if (uid > MAX_OCTAL_7 || gid > MAX_OCTAL_7 || size > MAX_OCTAL_11 || mtime > MAX_OCTAL_11 || mtime < 0) return false;
  if (name.length > 100 || linkname.length > 100 || Buffer.byteLength(name) > 100 || (linkname && Buffer.byteLength(linkname) > 100)) return false;
  buf.set(TEMPLATE, off);
  buf.write(name, off, 100, "utf8");
  if (linkname) buf.write(linkname, off + 157, 100, "utf8");
  finishUstar(buf, off, mode, uid, gid, size, mtime, TYPEFLAG[type]);
  return true;
}

/** The header block(s) of one entry: a pax header first when anything does not fit ustar. */
export function encodeHeader(h: TarHeader): Buffer {
  const name = Buffer.from(h.name, "utf8");
  const link = h.linkname ? Buffer.from(h.linkname, "utf8") : EMPTY;
  const records: Buffer[] = [];
  let split = splitName(name);
  if (!split) {
    records.push(paxRecord("path", name));
    split = [EMPTY, fallbackName(h.name)];
  }
  let linkField: Buffer = link;
  if (link.length > 100) {
    records.push(paxRecord("linkpath", link));
    linkField = fallbackName(h.linkname ?? "");
  }
  let { uid, gid, size, mtime } = h;
  if (uid > MAX_OCTAL_7) (records.push(paxRecord("uid", Buffer.from(String(uid)))), (uid = 0));
  if (gid > MAX_OCTAL_7) (records.push(paxRecord("gid", Buffer.from(String(gid)))), (gid = 0));
  if (size > MAX_OCTAL_11) (records.push(paxRecord("size", Buffer.from(String(size)))), (size = 0));
  if (mtime > MAX_OCTAL_11 || mtime < 0) (records.push(paxRecord("mtime", Buffer.from(String(mtime)))), (mtime = 0));
  for (const [k, v] of h.pax ?? []) records.push(paxRecord(k, v));

  const main = ustar({ name: split[1], prefix: split[0], mode: h.mode, uid, gid, size, mtime, typeflag: TYPEFLAG[h.type], linkname: linkField });
  if (!records.length) return main;
  const paxBody = Buffer.concat(records);
  const paxHead = ustar({
    name: Buffer.from("PaxHeader"),
    prefix: Buffer.alloc(0),
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: paxBody.length,
    mtime,
    typeflag: 0x78,
    linkname: Buffer.alloc(0),
  });
  return Buffer.concat([paxHead, paxBody, Buffer.alloc(padding(paxBody.length)), main]);
}

/** For readers without pax: the last 100 bytes' worth of the name, cut at a character boundary. */
function fallbackName(s: string): Buffer {
  let b = Buffer.from(s, "utf8");
  while (b.length > 100) {
    s = s.slice(1);
    b = Buffer.from(s, "utf8");
  }
  return b;
}

/** Zero bytes after `size` bytes of data, up to the next 512-byte block. */
export function padding(size: number): number {
  return (512 - (size % 512)) % 512;
}

/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(1024);
