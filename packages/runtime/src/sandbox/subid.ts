// The invoking user's subordinate id ranges (/etc/subuid, /etc/subgid) and the id mapping that the
// build namespace gets from them.
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";

export interface IdRange {
  /** First host id of the range. */
  start: number;
  count: number;
}

/**
 * How ids inside the build namespace map to host ids.
 * - `subid`: the invoker is 0, its subordinate range is 1…count (rootless, like podman/buildah).
 * - `identity`: real root without a subordinate range: 0…65535 map to themselves.
 * - `single`: no range: only the invoker (as 0) exists, images with other owners fail to extract.
 */
export interface IdMapping {
  kind: "subid" | "identity" | "single";
  /** Lines for /proc/PID/uid_map and gid_map: `[inside, outside, count]`. */
  uid: [number, number, number][];
  gid: [number, number, number][];
  /** What to tell the user when the mapping is worse than it could be. */
  note?: string;
}

/**
 * The first range of `user` in a subuid/subgid file. Entries name the user or its numeric uid.
 * (util-linux 2.38's own parser also matches any non-numeric name for uid 0, because
 * strtoul("name") is 0, so as root it picks the first line of the file; this one does not.)
 */
export function findSubidRange(text: string, user: string, uid: number): IdRange | undefined {
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const [owner, start, count] = line.split(":");
    if (owner !== user && !(/^\d+$/.test(owner) && Number(owner) === uid)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && c > 0) return { start: s, count: c };
  }
  return undefined;
}

function readRange(file: string, user: string, uid: number): IdRange | undefined {
  return findSubidRange(readOr(file), user, uid);
}

/**
 * The command that gives `user` a range of 65536 ids, placed after every range already handed out
 * (in `subidText`, the contents of /etc/subuid) so that it overlaps none; printed by the note and by
 * `mstage doctor`.
 */
export function addRangeCommand(user: string, subidText = readOr("/etc/subuid")): string {
  let start = 100000;
  for (const line of subidText.split("\n")) {
    const [, s, c] = line.trim().split(":");
    const end = Number(s) + Number(c);
    if (Number.isSafeInteger(end) && end > start) start = end;
  }
  start = Math.ceil(start / 65536) * 65536;
  const range = `${start}-${start + 65535}`;
  return `sudo usermod --add-subuids ${range} --add-subgids ${range} ${user}`;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** Decides the mapping for the current process's user from /etc/subuid and /etc/subgid. */
export function planIdMapping(
  files = { subuid: "/etc/subuid", subgid: "/etc/subgid" },
  who = { uid: process.getuid!(), gid: process.getgid!(), user: userInfo().username },
): IdMapping {
  const { uid, gid, user } = who;
  const ur = readRange(files.subuid, user, uid);
  const gr = readRange(files.subgid, user, uid);
  if (ur && gr) {
    return { kind: "subid", uid: [[0, uid, 1], [1, ur.start, ur.count]], gid: [[0, gid, 1], [1, gr.start, gr.count]] };
  }
  if (uid === 0) {
    // Real root may write any mapping itself. 0…65535 onto themselves keeps multi-user images
    // working, and the namespace still holds no capability over the host's own namespace.
    return { kind: "identity", uid: [[0, 0, 65536]], gid: [[0, 0, 65536]] };
  }
  const missing = [ur ? undefined : files.subuid, gr ? undefined : files.subgid].filter(Boolean).join(" and ");
  return {
    kind: "single",
    uid: [[0, uid, 1]],
    gid: [[0, gid, 1]],
    note:
      `user "${user}" has no subordinate id range in ${missing}, so builds map only your own id: ` +
      `images whose files belong to other users (apt's _apt, most Debian bases) cannot be built. ` +
      `Add a range with: ${addRangeCommand(user, readOr(files.subuid))}`,
  };
}
