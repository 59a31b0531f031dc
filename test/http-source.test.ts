// http(url, { sha256 }) (issue 10, item 9; BuildKit's ADD --checksum): the file is downloaded when
// the stage builds, from a server on loopback, and accepted only with the pinned checksum.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { imageEntries } from "./helpers/image-entries.ts";
import { expectOk, mstageAs, testUsers, userDir, writeAs } from "./up-harness.ts";

/** `server` listening on loopback, and a project and store of the first test user, all gone after the test. */
async function serveAndProject(t: TestContext, server: Server, prefix: string) {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const user = testUsers()[0]!.name;
  const project = userDir(user, prefix);
  const store = userDir(user, `${prefix}-store`);
  t.after(() => {
    server.close();
    rmSync(project, { recursive: true, force: true });
    rmSync(store, { recursive: true, force: true });
  });
  return { base, user, project, mstage: mstageAs(user, project, store) };
}

test("http() downloads a pinned file at build time and refuses one whose checksum differs", { timeout: 2 * 60_000 }, async (t) => {
  const body = Buffer.from("#!/bin/sh\necho downloaded\n");
  const sha = createHash("sha256").update(body).digest("hex");
  let requests = 0;
  const server = createServer((req, res) => {
    requests++;
    if (req.url === "/files/tool.sh") res.end(body);
    else res.writeHead(404).end();
  });
  const { base, user, project, mstage } = await serveAndProject(t, server, "http-src");
  const imagesTs = (digest: string) => `import { http, scratch, stage } from "mstage";
export const dl = stage("dl", {
  from: scratch(),
  copy: {
    "/opt/": http("${base}/files/tool.sh", { sha256: "${digest}" }),
    "/usr/local/bin/tool": http("${base}/files/tool.sh", { sha256: "sha256:${digest}", mode: 0o755, owner: "1000:1000" }),
  },
});
`;
  writeAs(user, join(project, "images.ts"), imagesTs(sha));
  expectOk(await mstage(["plan"]), "plan");
  assert.equal(requests, 0, "plan needs no network: the checksum is the key");
  expectOk(await mstage(["up", "-q"]), "up");
  const img = imageEntries(join(project, "oci"), "dl");
  assert.deepEqual([img.get("opt/tool.sh")?.mode, img.get("opt/tool.sh")?.uid, img.get("opt/tool.sh")?.content], [0o600, 0, `sha256:${sha}`], "by the URL's name, 0600 like Docker's ADD");
  assert.deepEqual([img.get("usr/local/bin/tool")?.mode, img.get("usr/local/bin/tool")?.uid], [0o755, 1000]);

  await t.test("a checksum that does not match fails the stage and names the URL", async () => {
    writeAs(user, join(project, "images.ts"), imagesTs("0".repeat(64)));
    const r = await mstage(["up", "-q"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`stage "dl".*${base.replace(/\./g, "\\.")}/files/tool\\.sh has sha256 sha256:${sha}, not the sha256:0{64}`, "s"));
  });
});

test("http() without sha256 needs --allow-unpinned, which pins the download in images.lock until --refresh", { timeout: 2 * 60_000 }, async (t) => {
  let body = "v1\n";
  const server = createServer((req, res) => (req.url === "/latest.txt" ? res.end(body) : req.url === "/other.txt" ? res.end("other\n") : res.writeHead(404).end()));
  const { base, user, project, mstage } = await serveAndProject(t, server, "http-unpinned");
  const url = `${base}/latest.txt`;
  const digest = (s: string) => "sha256:" + createHash("sha256").update(s).digest("hex");
  writeAs(user, join(project, "images.ts"), `import { http, scratch, stage } from "mstage";
export const dl = stage("dl", { from: scratch(), copy: { "/etc/latest.txt": http("${url}") } });
`);
  for (const cmd of ["plan", "up"]) {
    const r = await mstage([cmd, "-q"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /stage "dl", key "copy\["\/etc\/latest\.txt"\]": http\("http:\/\/127\.0\.0\.1:\d+\/latest\.txt"\) has no sha256 and images\.lock does not pin it: add \{ sha256: "sha256:…" \}.*or run mstage up --allow-unpinned/);
  }
  expectOk(await mstage(["up", "-q", "--allow-unpinned"]), "up --allow-unpinned");
  const lock = () => JSON.parse(readFileSync(join(project, "images.lock"), "utf8"));
  assert.deepEqual(lock().http, { [url]: digest("v1\n") });
  assert.equal(imageEntries(join(project, "oci"), "dl").get("etc/latest.txt")?.content, digest("v1\n"));

  body = "v2\n";
  const plan = JSON.parse(expectOk(await mstage(["plan", "--json"]), "plan without the flag: images.lock pins the URL").stdout);
  assert.equal(plan.stages[0].status, "cached");
  const up = expectOk(await mstage(["up", "--json", "--refresh", "--allow-unpinned"]), "up --refresh --allow-unpinned");
  assert.match(up.stdout, new RegExp(`http ${url.replace(/[.]/g, "\\.")} now ${digest("v2\n").slice(0, 19)}`));
  assert.deepEqual(lock().http, { [url]: digest("v2\n") });
  assert.equal(imageEntries(join(project, "oci"), "dl").get("etc/latest.txt")?.content, digest("v2\n"));

  await t.test("dockerfile(): ADD of a URL needs --checksum or --allow-unpinned, as http() does", async () => {
    const other = url.replace("latest.txt", "other.txt");
    writeAs(user, join(project, "Dockerfile"), `FROM scratch\nADD --checksum=${digest("v2\n")} --chmod=755 ${url} /bin/\nADD ${other} /etc/again.txt\n`);
    writeAs(user, join(project, "images.ts"), `import { dockerfile } from "mstage";\nexport const d = dockerfile("./Dockerfile", { name: "d" });\n`);
    const r = await mstage(["up", "-q"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /key "copy\["\/etc\/again\.txt"\]": http\("http:\/\/127\.0\.0\.1:\d+\/other\.txt"\) has no sha256 and images\.lock does not pin it/);
    expectOk(await mstage(["up", "-q", "--allow-unpinned"]), "up --allow-unpinned");
    const d = imageEntries(join(project, "oci"), "d");
    assert.deepEqual([d.get("bin/latest.txt")?.mode, d.get("bin/latest.txt")?.content], [0o755, digest("v2\n")], "--checksum, --chmod, named by the URL in a directory");
    assert.deepEqual([d.get("etc/again.txt")?.mode, d.get("etc/again.txt")?.content], [0o600, digest("other\n")], "0600 as Docker's ADD");
  });
});
