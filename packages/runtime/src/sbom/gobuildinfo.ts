// Go build information, read from an ELF binary's `.go.buildinfo` section the way `go version -m`
// does: the Go version and the module lines (path, mod, dep, =>, build) that the linker embeds.
// Only the format of Go 1.18 and later (inline strings) is read; older binaries report nothing.
import type { FileHandle } from "node:fs/promises";

export interface GoModule {
  path: string;
  version: string;
  sum?: string;
  /** A `replace` directive's target, which is what was really built (`./greet`, another module). */
  replacedBy?: { path: string; version: string; sum?: string };
}

export interface GoBuildInfo {
  goVersion: string;
  /** The main package's import path. */
  path?: string;
  main?: GoModule;
  deps: GoModule[];
  settings: Record<string, string>;
}

const MAGIC = Buffer.from("\xff Go buildinf:", "latin1");
const FLAG_INLINE = 0x2;

/** The build info of an ELF file, or undefined when it is not a Go binary (or too old a one). */
export async function readGoBuildInfo(fh: FileHandle): Promise<GoBuildInfo | undefined> {
  const section = await findSection(fh, ".go.buildinfo");
  if (!section || section.size < 32) return undefined;
  const head = await readAt(fh, section.offset, 32);
  if (!head.subarray(0, 14).equals(MAGIC)) return undefined;
  if ((head[15]! & FLAG_INLINE) === 0) return undefined;
  // Version and module info follow the 32-byte header as two varint-length-prefixed strings.
  const body = await readAt(fh, section.offset + 32, Math.min(section.size - 32, 1 << 20));
  const [version, rest] = varintString(body, 0) ?? [];
  if (version === undefined || rest === undefined) return undefined;
  const [modinfo] = varintString(body, rest) ?? [""];
  return parseModInfo(version, stripSentinels(modinfo));
}

/** The module text is framed by 16 bytes on each side (runtime/debug's sentinels). */
function stripSentinels(mod: string): string {
  return mod.length >= 33 && mod[mod.length - 17] === "\n" ? mod.slice(16, -16) : mod;
}

export function parseModInfo(goVersion: string, text: string): GoBuildInfo {
  const info: GoBuildInfo = { goVersion, deps: [], settings: {} };
  let last: GoModule | undefined;
  for (const line of text.split("\n")) {
    const f = line.split("\t");
    const mod = (): GoModule => ({ path: f[1] ?? "", version: f[2] ?? "", ...(f[3] ? { sum: f[3] } : {}) });
    switch (f[0]) {
      case "path":
        info.path = f[1];
        break;
      case "mod":
        info.main = last = mod();
        break;
      case "dep":
        info.deps.push((last = mod()));
        break;
      case "=>":
        // A replacement: what was really built in place of the line above.
        if (last) {
          const { path, version, sum } = mod();
          last.replacedBy = { path, version, ...(sum ? { sum } : {}) };
        }
        break;
      case "build": {
        const kv = f.slice(1).join("\t");
        const eq = kv.indexOf("=");
        if (eq > 0) info.settings[kv.slice(0, eq)] = kv.slice(eq + 1);
        break;
      }
    }
  }
  return info;
}

function varintString(buf: Buffer, at: number): [string, number] | undefined {
  let n = 0;
  let shift = 0;
  let i = at;
  for (; i < buf.length; i++) {
    const b = buf[i]!;
    n += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) break;
    if (shift > 35) return undefined;
  }
  i++;
  if (i + n > buf.length) return undefined;
  return [buf.toString("utf8", i, i + n), i + n];
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, offset);
  return buf.subarray(0, bytesRead);
}

/** Finds a named section through the ELF section headers (32- and 64-bit, either byte order). */
async function findSection(fh: FileHandle, name: string): Promise<{ offset: number; size: number } | undefined> {
  const h = await readAt(fh, 0, 64);
  if (h.length < 52 || h[0] !== 0x7f || h.toString("latin1", 1, 4) !== "ELF") return undefined;
  const is64 = h[4] === 2;
  const le = h[5] === 1;
  const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const word = (b: Buffer, o: number) => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(b, o));
  if (is64 && h.length < 64) return undefined;
  const shoff = word(h, is64 ? 0x28 : 0x20);
  const shentsize = u16(h, is64 ? 0x3a : 0x2e);
  const shnum = u16(h, is64 ? 0x3c : 0x30);
  const shstrndx = u16(h, is64 ? 0x3e : 0x32);
  if (!shoff || !shnum || shnum > 4096 || shstrndx >= shnum || shentsize < (is64 ? 64 : 40)) return undefined;
  const table = await readAt(fh, shoff, shentsize * shnum);
  if (table.length < shentsize * shnum) return undefined;
  const entry = (i: number) => {
    const o = i * shentsize;
    return {
      name: u32(table, o),
      offset: word(table, o + (is64 ? 0x18 : 0x10)),
      size: word(table, o + (is64 ? 0x20 : 0x14)),
    };
  };
  const strtab = entry(shstrndx);
  const names = await readAt(fh, strtab.offset, Math.min(strtab.size, 1 << 16));
  for (let i = 0; i < shnum; i++) {
    const s = entry(i);
    const end = names.indexOf(0, s.name);
    if (end > s.name && names.toString("latin1", s.name, end) === name) return { offset: s.offset, size: s.size };
  }
  return undefined;
}
