import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileCredentials } from "./credentials.ts";

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
