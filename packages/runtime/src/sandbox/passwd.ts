// Resolves a stage's `runAs`/`user` ("name", "uid", "name:group", "uid:gid") and a copy's `owner`
// against the image's own /etc/passwd and /etc/group, the way BuildKit does, without running
// anything in the image.
import { readFileSync } from "node:fs";
import { UserError } from "@mstage/core";
import { existingInRoot } from "./paths.ts";

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Home directory from /etc/passwd (HOME for the step), "/" when unknown. */
  home: string;
  /**
   * Supplementary groups: with no group given, the groups of /etc/group that list the user (found in
   * /etc/passwd) as a member, as runc and BuildKit do; with "user:group", none.
   */
  groups: number[];
}

function readDb(root: string, path: string): string[][] {
  const host = existingInRoot(root, path);
  if (!host) return [];
  let text: string;
  try {
    text = readFileSync(host, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

const NUMERIC = /^\d+$/;

export function resolveUser(root: string, spec: string): ResolvedUser {
  const [userPart, groupPart] = spec.split(":", 2);
  if (!userPart) throw new UserError(`user "${spec}" is empty: write a name or a uid, optionally ":group"`);
  const passwd = readDb(root, "/etc/passwd");
  const entry = NUMERIC.test(userPart)
    ? passwd.find((f) => f[2] === userPart)
    : passwd.find((f) => f[0] === userPart);
  if (!entry && !NUMERIC.test(userPart)) {
    throw new UserError(`user "${userPart}" is not in the image's /etc/passwd; create it in an earlier step or use a numeric uid`);
  }
  const uid = entry ? Number(entry[2]) : Number(userPart);
  let gid = entry ? Number(entry[3]) : 0;
  if (groupPart !== undefined && groupPart !== "") {
    if (NUMERIC.test(groupPart)) gid = Number(groupPart);
    else {
      const g = readDb(root, "/etc/group").find((f) => f[0] === groupPart);
      if (!g) throw new UserError(`group "${groupPart}" is not in the image's /etc/group; create it in an earlier step or use a numeric gid`);
      gid = Number(g[2]);
    }
  }
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid)) throw new UserError(`user "${spec}" has an invalid uid or gid in the image's /etc/passwd`);
  const groups: number[] = [];
  if (entry && (groupPart === undefined || groupPart === "")) {
    for (const g of readDb(root, "/etc/group")) {
      const id = Number(g[2]);
      if (g[3]?.split(",").includes(entry[0]!) && Number.isSafeInteger(id) && !groups.includes(id)) groups.push(id);
    }
  }
  return { uid, gid, home: entry?.[5] || "/", groups };
}

/**
 * The uid and gid a copy's `owner` names ("user", "user:group", "uid", "uid:gid"), as BuildKit's
 * `--chown` resolves it in the destination's /etc/passwd and /etc/group: a user name without a
 * group gets its primary group, a bare uid the same number as gid. Unknown names throw UserError.
 */
export function resolveOwner(root: string, spec: string): { uid: number; gid: number } {
  const [userPart = "", groupPart] = spec.split(":", 2);
  let uid: number;
  let gid: number;
  if (NUMERIC.test(userPart)) {
    uid = gid = Number(userPart);
  } else {
    const entry = readDb(root, "/etc/passwd").find((f) => f[0] === userPart);
    if (!entry) throw new UserError(`user "${userPart}" is not in the destination's /etc/passwd: create it in an earlier stage or use a numeric uid`);
    uid = Number(entry[2]);
    gid = Number(entry[3]);
  }
  if (groupPart !== undefined && groupPart !== "") {
    if (NUMERIC.test(groupPart)) gid = Number(groupPart);
    else {
      const g = readDb(root, "/etc/group").find((f) => f[0] === groupPart);
      if (!g) throw new UserError(`group "${groupPart}" is not in the destination's /etc/group: create it in an earlier stage or use a numeric gid`);
      gid = Number(g[2]);
    }
  }
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid)) throw new UserError(`owner "${spec}" has an invalid uid or gid in the destination's /etc/passwd or /etc/group`);
  return { uid, gid };
}
