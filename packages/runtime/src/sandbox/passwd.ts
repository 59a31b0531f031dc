// Resolves a stage's `runAs`/`user` ("name", "uid", "name:group", "uid:gid") against the image's own
// /etc/passwd and /etc/group, the way Docker does, without running anything in the image.
import { readFileSync } from "node:fs";
import { UserError } from "@mstage/core";
import { existingInRoot } from "./paths.ts";

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Home directory from /etc/passwd (HOME for the step), "/" when unknown. */
  home: string;
  /** Whether /etc/passwd has the user, so its supplementary groups can come from /etc/group. */
  named: boolean;
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
  return { uid, gid, home: entry?.[5] || "/", named: !!entry };
}
