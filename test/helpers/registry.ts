// Real registries for tests: Debian's docker-registry on a free loopback port (anonymous, htpasswd,
// or token auth against a small token server run here), a fault-injecting proxy in front of it,
// and a small busybox image built by hand to push and pull.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, createPrivateKey, createSign, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { gunzipSync, gzipSync } from "node:zlib";
import { after, before } from "node:test";
import { parseDigest, pushImage, type Digest, type RegistryClient } from "@mstage/runtime";

export const REGISTRY_BIN = "/usr/bin/docker-registry";

/** Why registry tests cannot run here, or undefined when they can. */
export function registryUnavailable(): string | undefined {
  if (!existsSync(REGISTRY_BIN)) return `${REGISTRY_BIN} is missing (apt-get install docker-registry)`;
  return undefined;
}

/** The built CLI, for tests that run `mstage` against a registry. */
export const CLI = join(import.meta.dirname, "..", "..", "packages", "cli", "bin", "mstage.mjs");

/** Why `mstage up` on a registry cannot be tested here (no docker-registry, no user namespaces, CLI not built), or undefined. */
export function cliRegistryUnavailable(): string | undefined {
  const r = registryUnavailable();
  if (r) return r;
  const u = spawnSync("unshare", ["--user", "--map-root-user", "--mount", "true"]);
  if (u.status !== 0) return `user namespaces are not available here (unshare: ${String(u.stderr).trim()}); see mstage doctor`;
  if (!existsSync(join(CLI, "..", "..", "dist", "mstage.mjs"))) return "the CLI is not built (pnpm build)";
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RunningRegistry {
  /** host:port, e.g. 127.0.0.1:40123 */
  host: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

export interface RegistryAuth {
  htpasswd?: { username: string; password: string };
  token?: TokenServer;
}

/**
 * Starts docker-registry with its own config and storage in a temp dir; waits until it answers.
 * The port is picked free and then given to the registry, so another test file running in parallel
 * can take it in between: the registry then exits with "address already in use" and is started again
 * on another port, and each registry answers with a header of its own so a test never takes another
 * file's registry on that port for its own.
 */
export async function startRegistry(auth: RegistryAuth = {}): Promise<RunningRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "mstage-registry-"));
  let authYaml = "";
  if (auth.htpasswd) {
    const r = spawnSync("htpasswd", ["-Bbn", auth.htpasswd.username, auth.htpasswd.password], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
    writeFileSync(join(dir, "htpasswd"), r.stdout);
    authYaml = `auth:\n  htpasswd:\n    realm: mstage-test\n    path: ${join(dir, "htpasswd")}\n`;
  } else if (auth.token) {
    authYaml = `auth:\n  token:\n    realm: ${auth.token.realm}\n    service: ${auth.token.service}\n    issuer: ${auth.token.issuer}\n    rootcertbundle: ${auth.token.certFile}\n`;
  }
  const identity = randomBytes(8).toString("hex");
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(dir, "data")}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: ${randomBytes(16).toString("hex")}
  headers:
    X-Mstage-Test-Registry: [${identity}]
${authYaml}`;
    writeFileSync(join(dir, "config.yml"), config);
    const child = spawn(REGISTRY_BIN, ["serve", join(dir, "config.yml")], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    // A test process that dies before its after() must not leave the registry running.
    const killOnExit = () => child.kill("SIGKILL");
    process.once("exit", killOnExit);
    child.once("exit", () => process.off("exit", killOnExit));
    const answered = await waitForHttp(`http://127.0.0.1:${port}/v2/`, identity, child, () => stderr);
    if (!answered) {
      if (attempt < 5 && /address already in use/.test(stderr)) continue;
      throw new Error(`docker-registry on 127.0.0.1:${port} exited with ${child.exitCode}: ${stderr}`);
    }
    return {
      host: `127.0.0.1:${port}`,
      port,
      dir,
      stop: async () => {
        await stopChild(child);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

/** Waits until the registry marked `identity` answers at `url` (true), or exits first (false). */
async function waitForHttp(url: string, identity: string, child: ChildProcess, log: () => string): Promise<boolean> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) return false;
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.headers.get("x-mstage-test-registry") === identity) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  throw new Error(`docker-registry did not answer on ${url} within 15 s: ${log()}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}

// ---- a registry for a describe() ----

export interface RegistrySuite {
  reg: RunningRegistry;
  /** The fault proxy in front of `reg`, when asked for. */
  proxy: FaultProxy;
  /** A temp dir of the suite's, removed after it. */
  tmp: string;
  /** `<tmp>/project`, with the `images` asked for as its images.ts. */
  project: string;
}

/**
 * Inside a describe(): starts a registry (and a fault proxy in front of it with `proxy`) and makes a
 * temp dir before the suite's tests, pushes `push` (repository:tag → image) with `client`, writes
 * `images` (given the running suite) as a project's images.ts, and after the tests closes `client`,
 * stops both and removes the dir. Its fields are set once before() ran.
 */
export function registrySuite(o: {
  prefix: string;
  client: RegistryClient;
  proxy?: boolean;
  push?: Record<string, TestImage>;
  images?: (suite: RegistrySuite) => string;
}): RegistrySuite {
  const suite = {} as RegistrySuite;
  before(async () => {
    suite.reg = await startRegistry();
    if (o.proxy) suite.proxy = await startFaultProxy(suite.reg.host);
    suite.tmp = mkdtempSync(join(tmpdir(), o.prefix));
    for (const [ref, img] of Object.entries(o.push ?? {})) await pushImage({ ...pushArgs(img, `${suite.reg.host}/${ref}`), client: o.client });
    suite.project = join(suite.tmp, "project");
    if (o.images) {
      mkdirSync(suite.project);
      writeFileSync(join(suite.project, "images.ts"), o.images(suite));
    }
  });
  after(async () => {
    await o.client.close();
    await suite.proxy?.stop();
    await suite.reg?.stop();
    if (suite.tmp) rmSync(suite.tmp, { recursive: true, force: true });
  });
  return suite;
}

// ---- token server ----

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  /** Every token request seen: the scopes asked for and the user (or undefined if anonymous). */
  requests: { scopes: string[]; user?: string }[];
  stop(): Promise<void>;
}

/**
 * A token server for distribution's `auth: token`: checks Basic credentials (when `users` is given),
 * grants the scopes asked for (pull only to anonymous callers), and signs RS256 JWTs whose x5c
 * header carries a self-signed certificate that the registry trusts via rootcertbundle.
 */
export async function startTokenServer(opts: { users?: Record<string, string>; anonymousPull?: boolean; expiresIn?: number } = {}): Promise<TokenServer> {
  const dir = mkdtempSync(join(tmpdir(), "mstage-token-"));
  const keyFile = join(dir, "key.pem");
  const certFile = join(dir, "cert.pem");
  const r = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "2", "-subj", "/CN=mstage-test-token"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  const key = createPrivateKey(readFileSync(keyFile));
  const certDer = Buffer.from(readFileSync(certFile, "utf8").replace(/-----[^-]+-----|\s/g, ""), "base64");
  const service = "mstage-test-registry";
  const issuer = "mstage-test-issuer";
  const requests: TokenServer["requests"] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const scopes = url.searchParams.getAll("scope");
    let user: string | undefined;
    const authz = req.headers.authorization;
    if (authz?.startsWith("Basic ")) {
      const [u, ...p] = Buffer.from(authz.slice(6), "base64").toString().split(":");
      if (!opts.users || opts.users[u!] !== p.join(":")) {
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }));
        return;
      }
      user = u;
    }
    requests.push({ scopes, ...(user ? { user } : {}) });
    const access = scopes.flatMap((s) => {
      const [type, name, actions] = s.split(":");
      if (type !== "repository" || !name || !actions) return [];
      const granted = actions.split(",").filter((a) => user !== undefined || (opts.anonymousPull && a === "pull"));
      return granted.length ? [{ type, name, actions: granted }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = opts.expiresIn ?? 300;
    const token = signJwt(
      { alg: "RS256", typ: "JWT", x5c: [certDer.toString("base64")] },
      { iss: issuer, sub: user ?? "", aud: service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomBytes(8).toString("hex"), access },
      key,
    );
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }));
  });
  const port = await listen(server);
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile,
    requests,
    stop: async () => {
      await closeServer(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString("base64url");
}

function signJwt(header: object, claims: object, key: ReturnType<typeof createPrivateKey>): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = createSign("RSA-SHA256").update(input).sign(key);
  return `${input}.${b64url(sig)}`;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

// ---- fault proxy ----

/** What the proxy does with one request: pass it on, answer with a status, corrupt the body, drop the connection, or never answer. */
export type Fault =
  | { kind: "pass" }
  | { kind: "status"; status: number; headers?: Record<string, string> }
  | { kind: "corrupt" }
  /** Forward the headers and half the body, then drop the connection. */
  | { kind: "truncate" }
  /** Forward the headers and half the body, then send nothing more (the connection stays open); `onStall` once it holds. */
  | { kind: "stall"; onStall?: () => void }
  | { kind: "reset" }
  | { kind: "hang" };

export interface FaultProxy {
  host: string;
  /** Requests seen, as "METHOD path". */
  seen: string[];
  /** Decides each request; replace it between tests. */
  decide: (req: IncomingMessage, n: number) => Fault;
  stop(): Promise<void>;
}

/** An HTTP proxy in front of `target` (host:port) that injects faults chosen by `decide`. */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const [thost, tport] = target.split(":");
  const proxy: FaultProxy = { host: "", seen: [], decide: () => ({ kind: "pass" }), stop: async () => {} };
  const server = createServer((req, res) => {
    proxy.seen.push(`${req.method} ${req.url}`);
    const fault = proxy.decide(req, proxy.seen.length);
    if (fault.kind === "status") {
      req.resume();
      res.writeHead(fault.status, { "content-type": "application/json", ...fault.headers });
      res.end(JSON.stringify({ errors: [{ code: "INJECTED", message: `injected ${fault.status}` }] }));
      return;
    }
    if (fault.kind === "hang") {
      req.resume();
      return;
    }
    if (fault.kind === "reset") {
      req.resume();
      req.socket.destroy();
      return;
    }
    forward(req, res, thost!, Number(tport), fault.kind === "corrupt", fault.kind === "truncate", fault.kind === "stall" ? (fault.onStall ?? (() => {})) : undefined);
  });
  const port = await listen(server);
  proxy.host = `127.0.0.1:${port}`;
  proxy.stop = () => closeServer(server);
  return proxy;
}

function forward(req: IncomingMessage, res: ServerResponse, host: string, port: number, corrupt: boolean, truncate = false, onStall?: () => void): void {
  const headers = { ...req.headers, host: `${host}:${port}` };
  const up = httpRequest({ host, port, method: req.method, path: req.url, headers }, (upRes) => {
    const h = { ...upRes.headers };
    // Locations the registry returns name itself; rewrite them so clients keep coming through us.
    if (typeof h.location === "string") h.location = h.location.replace(`//${host}:${port}`, `//${req.headers.host}`);
    res.writeHead(upRes.statusCode ?? 502, h);
    let flipped = !corrupt;
    const length = Number(upRes.headers["content-length"] ?? 0);
    let sent = 0;
    upRes.on("data", (chunk: Buffer) => {
      if (onStall && sent + chunk.length > length / 2) {
        // Half the body is on the wire; the rest never comes, and the client waits for it.
        res.write(chunk.subarray(0, Math.max(0, Math.floor(length / 2) - sent)), () => onStall());
        sent = length;
        upRes.destroy();
        return;
      }
      if (onStall && sent >= length) return;
      if (truncate && sent + chunk.length > length / 2) {
        res.write(chunk.subarray(0, Math.max(0, Math.floor(length / 2) - sent)));
        upRes.destroy();
        res.socket?.destroy();
        return;
      }
      sent += chunk.length;
      if (!flipped && chunk.length > 0) {
        chunk = Buffer.from(chunk);
        chunk[Math.floor(chunk.length / 2)]! ^= 0xff;
        flipped = true;
      }
      res.write(chunk);
    });
    upRes.on("end", () => res.end());
    upRes.on("error", () => res.destroy());
  });
  up.on("error", () => res.destroy());
  req.pipe(up);
}

// ---- a hand-made image ----

export interface TestBlob {
  digest: string;
  size: number;
  bytes: Buffer;
}

export interface TestImage {
  manifest: { bytes: Buffer; mediaType: string; digest: string };
  config: TestBlob;
  layers: (TestBlob & { diffId: string })[];
  blobs: Map<string, Buffer>;
}

function blob(bytes: Buffer): TestBlob {
  return { digest: "sha256:" + createHash("sha256").update(bytes).digest("hex"), size: bytes.length, bytes };
}

/**
 * A small image built by hand: a busybox-static layer (bin/busybox, bin/sh) plus, when asked,
 * extra layers of `extraLayers` random bytes each, then one layer per `trees` function (given an
 * empty dir to fill), with an OCI config and manifest.
 */
export function makeTestImage(opts: { extraLayers?: number[]; trees?: ((dir: string) => void)[]; label?: string } = {}): TestImage {
  const work = mkdtempSync(join(tmpdir(), "mstage-img-"));
  try {
    const layerTars: Buffer[] = [];
    const root = join(work, "l0");
    mkdirSync(join(root, "bin"), { recursive: true });
    writeFileSync(join(root, "bin", "busybox"), readFileSync("/bin/busybox"), { mode: 0o755 });
    spawnSync("ln", ["-s", "busybox", join(root, "bin", "sh")]);
    layerTars.push(tarDir(root));
    for (const [i, size] of (opts.extraLayers ?? []).entries()) {
      const dir = join(work, `l${i + 1}`);
      mkdirSync(join(dir, "data"), { recursive: true });
      writeFileSync(join(dir, "data", `blob${i}`), randomBytes(size));
      layerTars.push(tarDir(dir));
    }
    for (const [i, fill] of (opts.trees ?? []).entries()) {
      const dir = join(work, `t${i}`);
      mkdirSync(dir);
      fill(dir);
      layerTars.push(tarDir(dir));
    }
    const layers = layerTars.map((tar) => ({ ...blob(gzipSync(tar, { level: 1 })), diffId: blob(tar).digest }));
    const configJson = {
      architecture: "amd64",
      os: "linux",
      created: "1970-01-01T00:00:00Z",
      config: { Env: ["PATH=/bin"], Cmd: ["/bin/sh"], Labels: { "test.label": opts.label ?? "mstage" } },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created: "1970-01-01T00:00:00Z", created_by: "mstage test" })),
    };
    const config = blob(Buffer.from(JSON.stringify(configJson)));
    const mediaType = "application/vnd.oci.image.manifest.v1+json";
    const manifestJson = {
      schemaVersion: 2,
      mediaType,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: l.digest, size: l.size })),
    };
    const mbytes = Buffer.from(JSON.stringify(manifestJson));
    const blobs = new Map<string, Buffer>([[config.digest, config.bytes], ...layers.map((l) => [l.digest, l.bytes] as [string, Buffer])]);
    return { manifest: { bytes: mbytes, mediaType, digest: blob(mbytes).digest }, config, layers, blobs };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function tarDir(dir: string): Buffer {
  const r = spawnSync("tar", ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-C", dir, "-cf", "-", "."], { maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr}`);
  return r.stdout;
}

/** Writes `images` into an OCI image layout at `dir` (made if missing), each under its ref name. */
export function writeLayout(dir: string, images: Record<string, TestImage>): void {
  const blobs = join(dir, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const manifests = Object.entries(images).map(([ref, img]) => {
    for (const [d, bytes] of [...img.blobs, [img.manifest.digest, img.manifest.bytes] as const]) writeFileSync(join(blobs, d.slice(7)), bytes);
    return { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.bytes.length, annotations: { "org.opencontainers.image.ref.name": ref } };
  });
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }));
}

/** A TestImage's first layer as a plain tar (bin/busybox, bin/sh), for tarball() bases. */
export function busyboxTar(img: TestImage): Buffer {
  return gunzipSync(img.layers[0]!.bytes);
}

/** What pushImage() needs to push a TestImage to `ref`, its blobs read from memory. */
export function pushArgs(img: TestImage, ref: string) {
  return {
    ref,
    manifest: img.manifest,
    config: { digest: parseDigest(img.config.digest), size: img.config.size },
    layers: img.layers.map((l) => ({ digest: parseDigest(l.digest), size: l.size })),
    source: { openBlob: (d: string) => Readable.from([img.blobs.get(d)!]) },
  };
}

/** An OCI index over the given manifests, for platform-selection tests. */
export function makeIndex(entries: { digest: string; size: number; platform: { os: string; architecture: string; variant?: string } }[]): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: entries.map((e) => ({ mediaType: "application/vnd.oci.image.manifest.v1+json", ...e })),
  }));
}

/** Writes a docker config.json with `auths` for `host` and returns its path. */
export function writeAuthFile(dir: string, host: string, username: string, password: string): string {
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${username}:${password}`).toString("base64") } } }));
  return file;
}

/**
 * A directory of blobs by digest with the store's write contract (temp file, verify, rename;
 * nothing kept on failure), for tests that must not depend on the store's other features.
 */
export class DirBlobSink {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }
  path(d: string): string {
    return join(this.dir, d.replace("sha256:", ""));
  }
  hasBlob(d: string): boolean {
    return existsSync(this.path(d));
  }
  openBlob(d: string): Readable {
    return createReadStream(this.path(d));
  }
  read(d: string): Buffer {
    return readFileSync(this.path(d));
  }
  list(): string[] {
    return readdirSync(this.dir).filter((n) => !n.startsWith(".tmp"));
  }
  async writeBlob(source: Readable | Uint8Array, expected?: string): Promise<{ digest: Digest; size: number }> {
    const tmp = join(this.dir, `.tmp-${randomBytes(6).toString("hex")}`);
    const hash = createHash("sha256");
    let size = 0;
    try {
      const input = source instanceof Uint8Array ? Readable.from([Buffer.from(source)]) : source;
      await pipeline(
        input,
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const c of chunks) {
            hash.update(c);
            size += c.length;
            yield c;
          }
        },
        createWriteStream(tmp),
      );
      const digest = parseDigest("sha256:" + hash.digest("hex"));
      if (expected && digest !== expected) {
        throw Object.assign(new Error(`digest mismatch: want ${expected}, got ${digest}`), { name: "DigestMismatchError", expected, actual: digest });
      }
      renameSync(tmp, this.path(digest));
      return { digest, size };
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }
}
