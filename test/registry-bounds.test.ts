// Every byte read from a registry is bounded: a hostile registry on loopback that sends endless
// token or error bodies, stalls a body, or redirects off TLS. mstage must exit 1 naming the
// registry, in bounded time and memory, and SIGTERM must end it at once while it waits.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegistryClient, pullImage } from "@mstage/runtime";
import { DirBlobSink } from "./helpers/registry.ts";
import { MSTAGE_BIN } from "./helpers/mstage-cli.ts";

/** What the hostile registry does; `seen` lists "METHOD path" of every request. */
type Handler = (req: IncomingMessage, res: ServerResponse, port: number) => void;

/** A body of `total` bytes, sent as fast as the client takes it; stops when the client goes. */
function endless(res: ServerResponse, prefix: string, total = 512 << 20): void {
  const chunk = Buffer.alloc(64 << 10, "a");
  let sent = 0;
  res.write(prefix);
  const pump = () => {
    while (sent < total && !res.destroyed) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once("drain", pump);
    }
    res.end();
  };
  res.on("close", () => (sent = total));
  pump();
}

async function serve(handler: Handler): Promise<{ host: string; seen: string[]; stop: () => Promise<void> }> {
  const seen: string[] = [];
  let port = 0;
  const server: Server = createHttpServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    handler(req, res, port);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  port = (server.address() as { port: number }).port;
  return {
    host: `127.0.0.1:${port}`,
    seen,
    stop: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

const d = (b: Buffer) => "sha256:" + createHash("sha256").update(b).digest("hex");

/** The config and manifest of an image whose one layer is `layer` (of `mediaType`), its config claiming `diffId`. */
function oneLayerImage(layer: Buffer, diffId: string, mediaType: string): { config: Buffer; manifest: Buffer } {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [diffId] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: d(config), size: config.length },
      layers: [{ mediaType, digest: d(layer), size: layer.length }],
    }),
  );
  return { config, manifest };
}

function projectOn(ref: string): string {
  const dir = mkdtempSync(join(tmpdir(), "mstage-bounds-"));
  writeFileSync(join(dir, "images.ts"), `import { image, stage } from "mstage";\nexport const app = stage("app", { from: image(${JSON.stringify(ref)}), cmd: ["/x"] });\n`);
  return dir;
}

/** Runs `mstage up` under GNU time: exit code, stderr, peak RSS (of mstage and its re-executed child) and wall time. */
// Async: the hostile registry runs in this process and must keep answering.
async function upMeasured(dir: string): Promise<{ code: number; stderr: string; rssMB: number; ms: number }> {
  const start = Date.now();
  const child = spawn("/usr/bin/time", ["-f", "MAXRSS-KB %M", process.execPath, MSTAGE_BIN, "--store", join(dir, "store"), "up", "--progress", "plain"], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (c) => (stderr += c));
  const killer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const code = await new Promise<number>((r) => child.once("close", (c) => r(c ?? -1)));
  clearTimeout(killer);
  const kb = Number(/MAXRSS-KB (\d+)/.exec(stderr)?.[1] ?? NaN);
  return { code, stderr, rssMB: kb / 1024, ms: Date.now() - start };
}

describe("a registry that sends endless bodies", { skip: !spawnSync("/usr/bin/time", ["true"]).status ? undefined : "GNU time (/usr/bin/time) is not installed: run .ci/setup" }, () => {
  test("an endless token body: mstage exits 1 naming the registry, under 300 MB, in bounded time", async () => {
    const reg = await serve((req, res, port) => {
      if (req.url === "/v2/") {
        res.writeHead(401, { "www-authenticate": `Bearer realm="http://127.0.0.1:${port}/token",service="hostile"` }).end();
      } else if (req.url?.startsWith("/token")) {
        res.writeHead(200, { "content-type": "application/json" });
        endless(res, '{"token":"');
      } else res.writeHead(404).end();
    });
    const dir = projectOn(`${reg.host}/x/y:1`);
    try {
      const r = await upMeasured(dir);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`the token for ${reg.host.replace(/\./g, "\\.")} .*is larger than \\d+ bytes; refusing it`), r.stderr);
      assert.ok(r.rssMB < 300, `peak RSS ${r.rssMB.toFixed(0)} MB`);
      assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
      console.log(`# endless token body: exit ${r.code} after ${r.ms} ms, peak RSS ${r.rssMB.toFixed(0)} MB`);
    } finally {
      await reg.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an endless body on a 500: mstage retries, exits 1 naming the registry, under 300 MB, in bounded time", async () => {
    const reg = await serve((_req, res) => {
      res.writeHead(500, { "content-type": "text/plain" });
      endless(res, "broken: ");
    });
    const dir = projectOn(`${reg.host}/x/y:1`);
    try {
      const r = await upMeasured(dir);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`registry ${reg.host.replace(/\./g, "\\.")} failed GET .*\\(500 broken: a+\\)`), r.stderr);
      assert.ok(r.rssMB < 300, `peak RSS ${r.rssMB.toFixed(0)} MB`);
      assert.ok(r.ms < 60_000, `took ${r.ms} ms`);
      assert.ok(reg.seen.length >= 2, "a 500 is worth a retry");
      console.log(`# endless 500 body: exit ${r.code} after ${r.ms} ms (${reg.seen.length} requests), peak RSS ${r.rssMB.toFixed(0)} MB`);
    } finally {
      await reg.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("SIGTERM while a manifest body drips in ends mstage at once", async () => {
  let gotBody!: () => void;
  const bodyStarted = new Promise<void>((r) => (gotBody = r));
  const timers: NodeJS.Timeout[] = [];
  const reg = await serve((req, res) => {
    if (req.url === "/v2/") return void res.writeHead(200).end("{}");
    if (req.method === "HEAD") return void res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" }).end();
    res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" });
    res.write("{");
    gotBody();
    // One byte a second: never idle long enough for a timeout, never done.
    const t = setInterval(() => res.write(" "), 1000);
    timers.push(t);
    res.on("close", () => clearInterval(t));
  });
  const dir = projectOn(`${reg.host}/x/y:1`);
  try {
    const child = spawn(process.execPath, [MSTAGE_BIN, "--store", join(dir, "store"), "up", "--progress", "plain"], { cwd: dir, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    await bodyStarted;
    const sent = Date.now();
    child.kill("SIGTERM");
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r("still running"), 10_000))]);
    if (code === "still running") child.kill("SIGKILL");
    assert.notEqual(code, "still running", `mstage ignored SIGTERM for 10 s\n${stderr}`);
    assert.notEqual(code, 0, stderr);
    assert.match(stderr, /interrupted/, stderr);
    assert.ok(Date.now() - sent < 5_000, `exited ${Date.now() - sent} ms after SIGTERM`);
  } finally {
    for (const t of timers) clearInterval(t);
    await reg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("the client library on a misbehaving registry", () => {
  let tmp: string;
  before(() => (tmp = mkdtempSync(join(tmpdir(), "mstage-bounds-lib-"))));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test("a blob body that stalls ends the pull with a timeout after one retry, not one per retry", async () => {
    const layer = Buffer.alloc(100_000, 1);
    const { config, manifest } = oneLayerImage(layer, "sha256:" + "0".repeat(64), "application/vnd.oci.image.layer.v1.tar+gzip");
    const reg = await serve((req, res) => {
      if (req.url === "/v2/") return void res.writeHead(200).end("{}");
      if (req.url?.includes("/manifests/")) return void res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" }).end(manifest);
      if (req.url?.endsWith(d(config))) return void res.writeHead(200).end(config);
      // The layer: headers and half the bytes, then nothing.
      res.writeHead(200, { "content-length": String(layer.length) });
      res.write(layer.subarray(0, layer.length / 2));
    });
    const client = new RegistryClient({ timeoutMs: 300, backoffMs: 5 });
    try {
      const start = Date.now();
      await assert.rejects(pullImage(`${reg.host}/x/y:1`, { store: new DirBlobSink(join(tmp, "stall")), client }), (e: Error) => {
        assert.equal(e.name, "RegistryError");
        assert.match(e.message, new RegExp(`timed out after 300 ms talking to ${reg.host.replace(/\./g, "\\.")}`));
        return true;
      });
      assert.equal(reg.seen.filter((s) => s.endsWith(d(layer))).length, 2, reg.seen.join("\n"));
      assert.ok(Date.now() - start < 5_000, `took ${Date.now() - start} ms`);
    } finally {
      await client.close();
      await reg.stop();
    }
  });

  test("a redirect from HTTPS to plain HTTP is refused", async (t) => {
    const key = join(tmp, "key.pem");
    const cert = join(tmp, "cert.pem");
    const made = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"], { encoding: "utf8" });
    if (made.status !== 0) return t.skip(`openssl cannot make a certificate: ${made.stderr}`);
    const plain = await serve((_req, res) => res.writeHead(200).end("{}"));
    const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      if (req.url === "/v2/") return void res.writeHead(200).end("{}");
      res.writeHead(307, { location: `http://${plain.host}${req.url}` }).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
    const client = new RegistryClient({ retries: 0 });
    try {
      await assert.rejects(pullImage(`${host}/x/y:1`, { store: new DirBlobSink(join(tmp, "redirect")), client }), (e: Error) => {
        assert.equal(e.name, "RegistryError");
        assert.match(e.message, new RegExp(`registry ${host.replace(/\./g, "\\.")} redirected .* from HTTPS to http://${plain.host.replace(/\./g, "\\.")}/v2/x/y/manifests/1; refusing to leave TLS`));
        return true;
      });
      assert.deepEqual(plain.seen, [], "the plain-HTTP side was never asked");
    } finally {
      await client.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(() => r(undefined)));
      await plain.stop();
    }
  });
});

test("a pulled layer that is not a tar is one error naming the stage and the image", async () => {
  const junk = Buffer.from("not a tar at all; ".repeat(100));
  const { config, manifest } = oneLayerImage(junk, d(junk), "application/vnd.oci.image.layer.v1.tar");
  const reg = await serve((req, res) => {
    const type = { "content-type": "application/vnd.oci.image.manifest.v1+json", "docker-content-digest": d(manifest) };
    if (req.url === "/v2/") return void res.writeHead(200).end("{}");
    if (req.url?.includes("/manifests/")) return void res.writeHead(200, type).end(req.method === "HEAD" ? undefined : manifest);
    if (req.url?.endsWith(d(config))) return void res.writeHead(200).end(config);
    if (req.url?.endsWith(d(junk))) return void res.writeHead(200).end(junk);
    res.writeHead(404).end();
  });
  const dir = mkdtempSync(join(tmpdir(), "mstage-bounds-"));
  writeFileSync(join(dir, "images.ts"), `import { image, stage } from "mstage";\nexport const app = stage("app", { from: image("${reg.host}/x/y:1"), env: { A: "1" } });\n`);
  try {
    const r = await upMeasured(dir);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`stage "app", key "from": base ${reg.host.replace(/\./g, "\\.")}/x/y:1: layer ${d(junk)} is not a valid tar: it is not a tar archive`), r.stderr);
    assert.doesNotMatch(r.stderr, /internal error/);
  } finally {
    await reg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
