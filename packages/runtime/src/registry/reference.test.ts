import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatReference, parseReference, apiHost, isLoopbackHost } from "./reference.ts";
import { parseChallenge, fileCredentials } from "./auth.ts";
import { parsePlatform, selectPlatform } from "./platform.ts";
import { redact, retryAfterMs } from "./client.ts";

const D = "sha256:" + "ab".repeat(32);

test("short names normalise to docker.io/library with tag latest, like Docker", () => {
  assert.equal(formatReference(parseReference("golang")), "docker.io/library/golang:latest");
  assert.equal(formatReference(parseReference("golang:1.22")), "docker.io/library/golang:1.22");
  assert.equal(formatReference(parseReference("user/app:v1")), "docker.io/user/app:v1");
  assert.equal(formatReference(parseReference("index.docker.io/library/debian")), "docker.io/library/debian:latest");
});

test("a first component with a dot, a port or localhost is a registry host", () => {
  assert.deepEqual(parseReference("localhost:5000/x"), { registry: "localhost:5000", repository: "x", tag: "latest" });
  assert.deepEqual(parseReference("localhost/x:1"), { registry: "localhost", repository: "x", tag: "1" });
  assert.deepEqual(parseReference("ghcr.io/o/r/deep:2.0-rc.1"), { registry: "ghcr.io", repository: "o/r/deep", tag: "2.0-rc.1" });
  assert.deepEqual(parseReference("127.0.0.1:5000/a/b"), { registry: "127.0.0.1:5000", repository: "a/b", tag: "latest" });
  assert.deepEqual(parseReference("[::1]:5000/a"), { registry: "[::1]:5000", repository: "a", tag: "latest" });
});

test("digest pins keep the tag when both are given and drop the default tag", () => {
  assert.deepEqual(parseReference(`golang@${D}`), { registry: "docker.io", repository: "library/golang", digest: D });
  assert.deepEqual(parseReference(`localhost:5000/x:1.0@${D}`), { registry: "localhost:5000", repository: "x", tag: "1.0", digest: D });
  assert.equal(formatReference(parseReference(`x:1@${D}`)), `docker.io/library/x:1@${D}`);
});

test("bad references fail naming what is wrong", () => {
  assert.throws(() => parseReference("Golang:1"), /must be lowercase/);
  assert.throws(() => parseReference("x@sha256:abc"), /not sha256:<64/);
  assert.throws(() => parseReference("x:-bad"), /tag "-bad"/);
  assert.throws(() => parseReference("https://ghcr.io/x"), /without a scheme/);
  assert.throws(() => parseReference("a//b"), /path component ""/);
  assert.throws(() => parseReference(""), /empty/);
});

test("docker.io is reached at registry-1.docker.io and only loopback hosts are insecure by default", () => {
  assert.equal(apiHost("docker.io"), "registry-1.docker.io");
  assert.equal(apiHost("localhost:5000"), "localhost:5000");
  assert.ok(isLoopbackHost("127.0.0.1:5000"));
  assert.ok(isLoopbackHost("localhost"));
  assert.ok(isLoopbackHost("[::1]:5000"));
  assert.ok(!isLoopbackHost("registry.lan:5000"));
});

test("WWW-Authenticate challenges parse, bearer preferred over basic", () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull"'), {
    scheme: "bearer",
    params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/x:pull" },
  });
  assert.deepEqual(parseChallenge(['Basic realm="r"', 'Bearer realm="t"']), { scheme: "bearer", params: { realm: "t" } });
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: "basic", params: { realm: "Registry Realm" } });
  assert.equal(parseChallenge(undefined), undefined);
});

test("credentials come from REGISTRY_AUTH_FILE before docker config, most specific key first", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-auth-"));
  const a = join(dir, "auth.json");
  const b = join(dir, "config.json");
  writeFileSync(a, JSON.stringify({ auths: { "reg.example:5000/team": { auth: Buffer.from("team:pw1").toString("base64") } } }));
  writeFileSync(b, JSON.stringify({ auths: {
    "https://index.docker.io/v1/": { auth: Buffer.from("hub:pw:with:colons").toString("base64") },
    "http://reg.example:5000": { username: "u", password: "p" },
  } }));
  const creds = fileCredentials([a, b, join(dir, "missing.json")]);
  assert.deepEqual(await creds("docker.io", "library/x"), { username: "hub", password: "pw:with:colons" });
  assert.deepEqual(await creds("reg.example:5000", "team/app"), { username: "team", password: "pw1" });
  assert.deepEqual(await creds("reg.example:5000", "other/app"), { username: "u", password: "p" });
  assert.equal(await creds("elsewhere.example", "x"), undefined);
});

test("credential helpers named by credHelpers or credsStore are asked, and 'not found' means anonymous", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-credhelper-"));
  writeFileSync(
    join(dir, "docker-credential-mstagetest"),
    `#!/bin/sh
read host
case "$host" in
  reg.example:5000) echo '{"ServerURL":"reg.example:5000","Username":"helper-user","Secret":"helper-secret"}' ;;
  https://index.docker.io/v1/) echo '{"Username":"hub-user","Secret":"hub-secret"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`,
    { mode: 0o755 },
  );
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify({ credHelpers: { "reg.example:5000": "mstagetest" }, credsStore: "mstagetest", auths: { "other.example": { auth: Buffer.from("o:p").toString("base64") } } }));
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved}`;
  try {
    const creds = fileCredentials([file]);
    assert.deepEqual(await creds("reg.example:5000", "x"), { username: "helper-user", password: "helper-secret" });
    assert.deepEqual(await creds("docker.io", "library/x"), { username: "hub-user", password: "hub-secret" });
    assert.deepEqual(await creds("other.example", "x"), { username: "o", password: "p" });
    assert.equal(await creds("unknown.example", "x"), undefined);
    writeFileSync(file, JSON.stringify({ credsStore: "missing-helper" }));
    await assert.rejects(fileCredentials([file])("x.example", "y"), /names credential helper "missing-helper" for x\.example, but docker-credential-missing-helper is not on PATH/);
  } finally {
    process.env.PATH = saved;
  }
});

test("platform selection picks the matching entry and lists the others when none matches", () => {
  const entries = [
    { platform: { os: "linux", architecture: "amd64" }, id: 1 },
    { platform: { os: "linux", architecture: "arm", variant: "v7" }, id: 2 },
    { platform: { os: "linux", architecture: "arm64", variant: "v8" }, id: 3 },
    { platform: { os: "unknown", architecture: "unknown" }, id: 4 },
  ];
  assert.equal(selectPlatform(entries, parsePlatform("linux/amd64"), "x").id, 1);
  assert.equal(selectPlatform(entries, parsePlatform("linux/aarch64"), "x").id, 3);
  assert.equal(selectPlatform(entries, parsePlatform("linux/arm/v7"), "x").id, 2);
  assert.throws(() => selectPlatform(entries, parsePlatform("linux/s390x"), "img"), /img has no image for platform linux\/s390x; available: linux\/amd64, linux\/arm\/v7, linux\/arm64\/v8 \(/);
  assert.throws(() => parsePlatform("linux"), /os\/arch/);
});

test("redacted URLs keep neither userinfo nor upload state, and Retry-After reads seconds or dates", () => {
  const r = redact("https://user:secret@reg.example/v2/x/blobs/uploads/abc?_state=SECRET&digest=sha256:1");
  assert.ok(!r.includes("secret") && !r.includes("SECRET") && !r.includes("user"), r);
  assert.ok(r.includes("digest=sha256%3A1") || r.includes("digest=sha256:1"), r);
  assert.equal(retryAfterMs("3"), 3000);
  const soon = retryAfterMs(new Date(Date.now() + 5000).toUTCString())!;
  assert.ok(soon > 3000 && soon <= 5000, String(soon));
  assert.equal(retryAfterMs("soon"), undefined);
});
