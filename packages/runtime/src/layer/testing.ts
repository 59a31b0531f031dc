// For the runtime's unit tests only (nothing in the library imports it): tars built by hand.
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from "./tar-header.ts";

export type Entry = Partial<TarHeader> & { name: string; body?: string | Buffer };

/** A tar built entry by entry, hostile names included (the encoder does not judge). */
export function tarOf(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? "");
    parts.push(encodeHeader({ type: "file", mode: 0o644, uid: 0, gid: 0, mtime: 0, ...e, size: body.length }));
    parts.push(body, Buffer.alloc(padding(body.length)));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}
