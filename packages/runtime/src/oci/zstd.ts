// zstd for layers, through Debian's `zstd` (1.5.4 here): compression of a store blob on every core,
// and a decompressing stream for zstd layers read from registries and layouts.
//
// Reproducible bytes: the parameters are pinned (level 3, as skopeo/containers-image write zstd;
// no long mode; the CLI's default content checksum) and the input is always the blob's file, so the
// frame header carries its size. zstd's multithreaded mode cuts the input into jobs sized from the
// level's window, not from the thread count, so any `-T` ≥ 1 gives the same bytes (checked for
// 1, 2 and 8 in zstd.test.ts); `--single-thread` and stdin input would not, and neither is used.
// ZSTD_CLEVEL / ZSTD_NBTHREADS from the environment are dropped for the same reason.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Duplex } from "node:stream";
import { UserError } from "@mstage/core";
import type { OciBlobStore } from "./blobs.ts";
import { heldStdout } from "./child-output.ts";
import type { Digest } from "./digest.ts";

export const ZSTD_LEVEL = 3;

function zstdEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.ZSTD_CLEVEL;
  delete env.ZSTD_NBTHREADS;
  return env;
}

function notInstalled(e: Error): UserError {
  return new UserError(`cannot run zstd (${e.message}): install it with \`apt-get install zstd\`, or use gzip (the default)`);
}

export interface ZstdOptions {
  /** zstd's worker threads (default: every core); the output does not depend on it as long as it is ≥ 1. */
  threads?: number;
  /** Called with the uncompressed bytes read so far. */
  onProgress?: (bytesIn: number) => void;
}

/** Compresses the blob `diffId` (an uncompressed layer tar) with zstd into a new store blob. */
export async function zstdBlob(store: OciBlobStore, diffId: Digest, options: ZstdOptions = {}): Promise<{ digest: Digest; size: number }> {
  if (!(await store.hasBlob(diffId))) {
    throw new Error(`layer ${diffId} is not in the store uncompressed, so it cannot be compressed with zstd here`);
  }
  const threads = Math.max(1, options.threads ?? availableParallelism());
  const args = ["-q", "-c", `-${ZSTD_LEVEL}`, `-T${threads}`, "--no-progress", "--", store.blobPath(diffId)];
  const child = spawn("zstd", args, { stdio: ["ignore", "pipe", "pipe"], env: zstdEnv() });
  const output = heldStdout(child);
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const exited = new Promise<void>((resolve, reject) => {
    child.once("error", (e) => reject(notInstalled(e)));
    child.once("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`zstd failed compressing layer ${diffId}: ${stderr.trim() || `exit ${code ?? signal}`}`));
    });
  });
  exited.catch(() => {});
  if (options.onProgress) watchInput(child.pid, options.onProgress);
  try {
    const written = await store.writeBlob(output);
    await exited;
    return written;
  } catch (e) {
    child.kill("SIGKILL");
    await exited.catch(() => {});
    throw e;
  }
}

/** Reports how far zstd has read its input, from /proc (zstd -q prints no progress of its own). */
function watchInput(pid: number | undefined, onProgress: (bytes: number) => void): void {
  if (pid === undefined) return;
  const timer = setInterval(() => {
    try {
      // fd 3 is the input file (0 is /dev/null, 1 the pipe, 2 stderr).
      const pos = /pos:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/fdinfo/3`, "utf8"));
      if (pos) onProgress(Number(pos[1]));
    } catch {
      clearInterval(timer);
    }
  }, 250);
  timer.unref();
}

/**
 * A stream that undoes zstd (for a zstd layer's blob): write the compressed bytes, read the tar.
 * A corrupt or truncated stream ends it with zstd's own words.
 */
export function zstdDecompressor(): Duplex {
  const child = spawn("zstd", ["-d", "-c", "-q"], { stdio: ["pipe", "pipe", "pipe"], env: zstdEnv() });
  const tar = heldStdout(child);
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  // The readable side ends only once zstd has exited well, so a late error is never lost.
  let exitedWell!: () => void;
  const exit = new Promise<void>((resolve) => (exitedWell = resolve));
  async function* output(): AsyncGenerator<Buffer> {
    for await (const chunk of tar) yield chunk as Buffer;
    await exit;
  }
  const duplex = Duplex.from({ writable: child.stdin, readable: output() });
  child.once("error", (e) => duplex.destroy(notInstalled(e)));
  child.once("close", (code, signal) => {
    if (code === 0) exitedWell();
    else duplex.destroy(new Error(`zstd: ${stderr.replace(/^zstd: /, "").trim() || `exit ${code ?? signal}`}`));
  });
  duplex.once("close", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return duplex;
}
