// `http()` sources: a file fetched when its stage builds and accepted only with the sha256 the
// config pins (BuildKit's ADD --checksum), streamed to a temp file beside its destination while
// hashed, so a wrong or truncated download never reaches the image.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { UserError } from "@mstage/core";

/** How long a download may take in all. */
const DEADLINE_MS = 10 * 60_000;

/** Downloads `url` to `target` (replacing it) if its bytes have `sha256` ("sha256:<hex>"). */
export async function download(url: string, sha256: string, target: string, signal?: AbortSignal): Promise<void> {
  const res = await get(url, signal);
  const tmp = `${target}.mstage-download-${process.pid}`;
  const hash = createHash("sha256");
  try {
    const body = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
    body.on("data", (c: Buffer) => hash.update(c));
    await pipeline(body, createWriteStream(tmp, { mode: 0o600 }));
    const got = "sha256:" + hash.digest("hex");
    if (got !== sha256) throw new UserError(`${url} has sha256 ${got}, not the ${sha256} the config pins: check the URL, or update sha256 if the file was meant to change`);
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * The sha256 of what `url` serves now ("sha256:<hex>"), read through once: how an http() source
 * without a checksum gets pinned (`up --allow-unpinned`); the copy then downloads it against that pin.
 */
export async function downloadDigest(url: string, signal?: AbortSignal): Promise<string> {
  const res = await get(url, signal);
  const hash = createHash("sha256");
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) hash.update(chunk);
  return "sha256:" + hash.digest("hex");
}

/** A GET of `url` that answered 2xx with a body, within the deadline; anything else a UserError naming the URL. */
async function get(url: string, signal?: AbortSignal): Promise<Response & { body: NonNullable<Response["body"]> }> {
  const timeout = AbortSignal.timeout(DEADLINE_MS);
  const res = await fetch(url, { redirect: "follow", signal: signal ? AbortSignal.any([signal, timeout]) : timeout }).catch((e: Error) => {
    throw new UserError(`cannot download ${url}: ${(e.cause as Error | undefined)?.message ?? e.message}`);
  });
  if (!res.ok || !res.body) throw new UserError(`cannot download ${url}: the server answered ${res.status} ${res.statusText}`);
  return res as Response & { body: NonNullable<Response["body"]> };
}

/** The file name Docker's ADD gives a URL's download in a directory: the last path segment. */
export function urlFileName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.split("/").filter(Boolean).pop() ?? "");
  return name && name !== "." && name !== ".." ? name : "index.html";
}
