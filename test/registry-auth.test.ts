// Registry authentication against real registries: htpasswd (Basic) with credentials from a
// docker config.json, and the bearer-token flow against a token server the test runs.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegistryClient, fileCredentials, pullImage, pushImage, resolveDigest } from "@mstage/runtime";
import {
  DirBlobSink,
  makeTestImage,
  registryUnavailable,
  startRegistry,
  startTokenServer,
  writeAuthFile,
  type RunningRegistry,
  type TestImage,
  type TokenServer,
  pushArgs,
} from "./helpers/registry.ts";

const unavailable = registryUnavailable() ?? (spawnSync("htpasswd", ["-h"]).error ? "htpasswd is missing (apt-get install apache2-utils)" : undefined);


const SECRET = "s3cret-Pa55word";

describe("basic auth (htpasswd)", { skip: unavailable }, () => {
  let reg: RunningRegistry;
  let tmp: string;
  const img = makeTestImage({ label: "basic" });
  before(async () => {
    reg = await startRegistry({ htpasswd: { username: "alice", password: SECRET } });
    tmp = mkdtempSync(join(tmpdir(), "mstage-auth-"));
  });
  after(async () => {
    await reg?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test("credentials from a docker config.json push and pull", async () => {
    const client = new RegistryClient({ credentials: fileCredentials([writeAuthFile(tmp, reg.host, "alice", SECRET)]) });
    try {
      const pushed = await pushImage({ ...pushArgs(img, `${reg.host}/team/app:1`), client });
      assert.equal(pushed.digest, img.manifest.digest);
      const pulled = await pullImage(`${reg.host}/team/app:1`, { store: new DirBlobSink(join(tmp, "store")), client });
      assert.equal(pulled.manifestDigest, img.manifest.digest);
    } finally {
      await client.close();
    }
  });

  test("REGISTRY_AUTH_FILE is read when no credential source is given", async () => {
    const dir = mkdtempSync(join(tmp, "env-"));
    const file = join(dir, "auth.json");
    writeFileSync(file, JSON.stringify({ auths: { [reg.host]: { username: "alice", password: SECRET } } }));
    const saved = process.env.REGISTRY_AUTH_FILE;
    process.env.REGISTRY_AUTH_FILE = file;
    try {
      assert.equal(await resolveDigest(`${reg.host}/team/app:1`), img.manifest.digest);
    } finally {
      if (saved === undefined) delete process.env.REGISTRY_AUTH_FILE;
      else process.env.REGISTRY_AUTH_FILE = saved;
    }
  });

  test("without credentials the error says to log in, and never shows a password", async () => {
    const client = new RegistryClient({ credentials: async () => undefined });
    try {
      await assert.rejects(resolveDigest(`${reg.host}/team/app:1`, { client }), (e: Error) => {
        assert.equal(e.name, "RegistryError");
        assert.match(e.message, new RegExp(`login to ${reg.host} needed`));
        return true;
      });
    } finally {
      await client.close();
    }
    const wrong = new RegistryClient({ credentials: async () => ({ username: "alice", password: "wrong-" + SECRET }) });
    try {
      await assert.rejects(resolveDigest(`${reg.host}/team/app:1`, { client: wrong }), (e: Error) => {
        assert.match(e.message, /login to .* needed/);
        assert.ok(!e.message.includes(SECRET) && !JSON.stringify(e).includes(SECRET), "the password leaked into the error");
        return true;
      });
    } finally {
      await wrong.close();
    }
  });
});

describe("bearer token auth", { skip: unavailable }, () => {
  let tokens: TokenServer;
  let reg: RunningRegistry;
  let tmp: string;
  const img = makeTestImage({ label: "bearer" });
  before(async () => {
    tokens = await startTokenServer({ users: { bob: SECRET }, anonymousPull: true });
    reg = await startRegistry({ token: tokens });
    tmp = mkdtempSync(join(tmpdir(), "mstage-token-"));
  });
  after(async () => {
    await reg?.stop();
    await tokens?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test("push and pull with tokens for the right scopes, reused until they expire", async () => {
    const client = new RegistryClient({ credentials: fileCredentials([writeAuthFile(tmp, reg.host, "bob", SECRET)]) });
    try {
      await pushImage({ ...pushArgs(img, `${reg.host}/team/app:1`), client });
      const pushTokens = tokens.requests.length;
      assert.ok(pushTokens >= 1);
      assert.ok(tokens.requests.every((r) => r.user === "bob"));
      assert.ok(tokens.requests.some((r) => r.scopes.includes("repository:team/app:pull,push")), JSON.stringify(tokens.requests));
      // Same scope again: the cached token is reused, no new token request.
      await pushImage({ ...pushArgs(img, `${reg.host}/team/app:2`), client });
      assert.equal(tokens.requests.length, pushTokens);

      // A mount needs a token that also grants pull on the source repository.
      const mounted = await pushImage({ ...pushArgs(img, `${reg.host}/team/copy:1`), client, mountFrom: ["team/app"] });
      assert.deepEqual(mounted.blobs, { present: 0, mounted: 2, uploaded: 0 });
      assert.ok(tokens.requests.some((r) => r.scopes.includes("repository:team/copy:pull,push") && r.scopes.includes("repository:team/app:pull")), JSON.stringify(tokens.requests));

      const pulled = await pullImage(`${reg.host}/team/app:1`, { store: new DirBlobSink(join(tmp, "s1")), client });
      assert.equal(pulled.manifestDigest, img.manifest.digest);
      assert.ok(tokens.requests.some((r) => r.scopes.includes("repository:team/app:pull")));
      const afterPull = tokens.requests.length;
      await resolveDigest(`${reg.host}/team/app:2`, { client });
      assert.equal(tokens.requests.length, afterPull, "pull token not reused");
    } finally {
      await client.close();
    }
  });

  test("anonymous pull gets a pull-only token; anonymous push is refused with a login hint", async () => {
    const client = new RegistryClient({ credentials: async () => undefined });
    try {
      assert.equal(await resolveDigest(`${reg.host}/team/app:1`, { client }), img.manifest.digest);
      await assert.rejects(pushImage({ ...pushArgs(img, `${reg.host}/team/other:1`), client }), /login to 127\.0\.0\.1:\d+ needed/);
    } finally {
      await client.close();
    }
  });

  test("expired tokens are fetched again", async () => {
    const short = await startTokenServer({ users: { bob: SECRET }, expiresIn: 1 });
    const reg2 = await startRegistry({ token: short });
    const client = new RegistryClient({ credentials: async () => ({ username: "bob", password: SECRET }) });
    try {
      await pushImage({ ...pushArgs(img, `${reg2.host}/x/y:1`), client });
      const n = short.requests.length;
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(await resolveDigest(`${reg2.host}/x/y:1`, { client }), img.manifest.digest);
      assert.ok(short.requests.length > n, "no new token after expiry");
    } finally {
      await client.close();
      await reg2.stop();
      await short.stop();
    }
  });
});
