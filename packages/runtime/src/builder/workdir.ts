// A stage's `workdir` is made before its copies, as BuildKit's WORKDIR is: with its parents, 0755,
// owned by the user the stage runs as, so a non-root `run` can write to it. An existing one is left
// as it is.
import { StageError, isUserError, type Stage } from "@mstage/core";
import { mkdirInRoot } from "../sandbox/paths.ts";
import { resolveUser } from "../sandbox/passwd.ts";

/**
 * Creates `stage.spec.workdir` in `root` when it is missing. Its owner is the user in effect there:
 * `runAs`, else `user` when the image already knows it (a stage may create its `user` in its own
 * `run`), else `inherited` (the base's user), else root.
 */
export function createWorkdir(root: string, stage: Stage, inherited: string | undefined): void {
  const workdir = stage.spec.workdir;
  if (!workdir) return;
  const who = stage.spec.runAs ?? (stage.spec.user && known(root, stage.spec.user) ? stage.spec.user : inherited);
  let owner = { uid: 0, gid: 0 };
  if (who) {
    try {
      const u = resolveUser(root, who);
      owner = { uid: u.uid, gid: u.gid };
    } catch (e) {
      if (isUserError(e)) throw new StageError(stage.name, `cannot create the workdir ${workdir} as user "${who}": ${(e as Error).message}`, stage.spec.runAs ? "runAs" : "workdir", stage.definedAt);
      throw e;
    }
  }
  try {
    mkdirInRoot(root, workdir, owner);
  } catch (e) {
    throw new StageError(stage.name, `cannot create the workdir ${workdir}: ${(e as Error).message}`, "workdir", stage.definedAt);
  }
}

function known(root: string, user: string): boolean {
  try {
    resolveUser(root, user);
    return true;
  } catch {
    return false;
  }
}
