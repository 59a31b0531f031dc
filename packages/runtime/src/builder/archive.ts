// `archive()` sources: a tar extracted into a copy's destination, as Docker's ADD does with a local
// archive. The bytes go through the layer extractor (applyLayer, "merge"), so an archive gets the
// same hostile-tar safety as a pulled layer; bzip2, xz and zstd are undone by the host's tools.
import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { UserError } from "@mstage/core";
import { applyLayer } from "../layer/apply.ts";
import { heldStdout } from "../oci/child-output.ts";

const MAGIC: Array<[tool: string, bytes: number[]]> = [
  ["bzip2", [0x42, 0x5a, 0x68]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
];

async function compressor(file: string): Promise<string | undefined> {
  const fd = await open(file, "r");
  try {
    const head = Buffer.alloc(6);
    const { bytesRead } = await fd.read(head, 0, 6, 0);
    return MAGIC.find(([, m]) => bytesRead >= m.length && m.every((b, i) => head[i] === b))?.[0];
  } finally {
    await fd.close();
  }
}

/**
 * Extracts the tar `file` (plain, gzip, bzip2, xz or zstd) into the existing directory `dir`.
 * @param what names the archive in errors, e.g. `archive ./vendor/tool.tar.xz`
 */
export async function extractArchive(file: string, dir: string, what: string, onNote?: (m: string) => void): Promise<void> {
  const tool = await compressor(file);
  if (!tool) {
    await applyLayer(createReadStream(file), dir, { mode: "merge", what, onNote });
    return;
  }
  const child = spawn(tool, ["-dc", "--", file], { stdio: ["ignore", "pipe", "pipe"] });
  const tar = heldStdout(child);
  let err = "";
  child.stderr.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-2000)));
  const exited = new Promise<number>((resolve, reject) => {
    child.once("error", (e) => reject(new UserError(`${what}: cannot run ${tool} to decompress it (${(e as Error).message}); install it with \`apt-get install ${tool}\``)));
    child.once("close", (code) => resolve(code ?? 1));
  });
  try {
    await applyLayer(tar, dir, { mode: "merge", what, onNote });
  } catch (e) {
    child.kill();
    await exited.catch(() => undefined);
    throw e;
  }
  // The tar's end may come before the compressed stream's: read the rest, so the tool exits 0.
  tar.resume();
  const code = await exited;
  if (code !== 0) throw new UserError(`${what} is not a valid ${tool}-compressed archive: ${err.trim() || `${tool} exited ${code}`}`);
}
