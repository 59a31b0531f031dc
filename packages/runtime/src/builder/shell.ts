// `mstage shell`: a throw-away sandbox on a stage's result (stacker's `chroot`). The result's layers
// are the lower dirs of a fresh overlay whose upper dir is deleted afterwards, so nothing the
// session changes reaches the store.
import { lstat, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { UserError } from "@mstage/core";
import { runEnv } from "../oci/config.ts";
import type { BuiltStage } from "./builder.ts";
import { ensureLayerExtracted, runStep, withRootfs, type Store } from "./deps.ts";
import { hostPathInRoot } from "../sandbox/paths.ts";

export interface ShellOptions {
  /** The command; default the stage's shell (its first word), e.g. /bin/sh. */
  argv?: string[];
  /** Inherit the terminal (interactive); otherwise output goes to onOutput. */
  tty: boolean;
  onOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
  signal?: AbortSignal;
}

export async function openShell(store: Store, built: BuiltStage, o: ShellOptions): Promise<number> {
  const lowers: string[] = [];
  for (const l of built.result.layers) {
    lowers.push(await ensureLayerExtracted(store, l.diffId, () => store.openBlob(store.layerBlob(l.diffId) ?? l.diffId)));
  }
  lowers.reverse();
  const work = store.tmpDir("shell");
  try {
    const upper = join(work, "upper");
    await mkdir(upper);
    return await withRootfs({ lowers, upper, tmpDir: work }, async (merged) => {
      const argv = o.argv?.length ? o.argv : [built.stage.spec.shell[0] ?? "/bin/sh"];
      if (!o.argv?.length && !(await lstat(hostPathInRoot(merged, argv[0]!, { followLast: true })).catch(() => undefined))) {
        throw new UserError(`stage "${built.stage.name}" has no ${argv[0]}: name a command that it has, e.g. mstage shell ${built.stage.name} -- /hello`);
      }
      const config = built.config.config ?? {};
      const { exitCode } = await runStep({
        rootfs: merged,
        argv,
        env: { ...runEnv(built.config), ...(o.tty ? { TERM: process.env.TERM ?? "xterm" } : {}) },
        workdir: config.WorkingDir || undefined,
        user: config.User || undefined,
        network: "host",
        tty: o.tty,
        signal: o.signal,
        onOutput: o.onOutput,
      });
      return exitCode;
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
