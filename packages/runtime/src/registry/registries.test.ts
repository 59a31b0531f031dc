import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatReference } from "./reference.ts";
import { insecureHosts, loadRegistriesConf, parseRegistriesConf, pullEndpoints, registriesConfCandidates } from "./registries.ts";

const CONF = `
unqualified-search-registries = ["quay.io", "docker.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:5000/hub"
[[registry.mirror]]
location = "mirror.example.com:5000"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
prefix = "zothub.io/c3"
location = "127.0.0.1:5001/c3-copy"

[[registry]]
location = "blocked.example.com"
blocked = true
`;

const where = (input: string) => pullEndpoints(input, parseRegistriesConf(CONF)).map((e) => formatReference(e.ref) + (e.mirror ? ` (mirror ${e.mirror})` : ""));

test("a short name is looked for in each unqualified-search registry, docker.io's mirrors first", () => {
  assert.deepEqual(where("golang:1.21"), [
    "quay.io/golang:1.21",
    "127.0.0.1:5000/hub/library/golang:1.21 (mirror 127.0.0.1:5000/hub)",
    "docker.io/library/golang:1.21",
  ]);
});

test("a mirror marked digest-only serves only pinned references; insecure mirrors allow plain HTTP", () => {
  const d = "sha256:" + "a".repeat(64);
  assert.deepEqual(where(`docker.io/library/alpine@${d}`), [
    `127.0.0.1:5000/hub/library/alpine@${d} (mirror 127.0.0.1:5000/hub)`,
    `mirror.example.com:5000/library/alpine@${d} (mirror mirror.example.com:5000)`,
    `docker.io/library/alpine@${d}`,
  ]);
  assert.deepEqual(insecureHosts(parseRegistriesConf(CONF)), ["mirror.example.com:5000"]);
});

test("the longest matching prefix rewrites to its location; a blocked registry is refused", () => {
  assert.deepEqual(where("zothub.io/c3/ubuntu/go-devel-amd64:1.19.2"), ["127.0.0.1:5001/c3-copy/ubuntu/go-devel-amd64:1.19.2"]);
  assert.deepEqual(where("zothub.io/tools/busybox:stable"), ["zothub.io/tools/busybox:stable"]);
  assert.throws(() => where("blocked.example.com/x:1"), /blocked/);
});

test("without a registries.conf a short name means docker.io, as with Docker", () => {
  assert.deepEqual(pullEndpoints("golang", { search: ["docker.io"], registries: [] }).map((e) => formatReference(e.ref)), ["docker.io/library/golang:latest"]);
});

test("CONTAINERS_REGISTRIES_CONF wins over the user's and the system's file; mistakes name the file", () => {
  const dir = mkdtempSync(join(tmpdir(), "mstage-regconf-"));
  assert.deepEqual(registriesConfCandidates({ HOME: "/home/u" }), ["/home/u/.config/containers/registries.conf", "/etc/containers/registries.conf"]);
  const file = join(dir, "r.conf");
  writeFileSync(file, CONF);
  assert.deepEqual(loadRegistriesConf({ CONTAINERS_REGISTRIES_CONF: file }).search, ["quay.io", "docker.io"]);
  assert.throws(() => parseRegistriesConf("[registries.search]\nregistries = ['x']\n", "/etc/r.conf"), /\/etc\/r\.conf: .*v1 format/);
  assert.throws(() => parseRegistriesConf("[[registry]]\ninsecure = 1\nprefix='x'\n", "f"), /f: \[\[registry\]\] #1: insecure must be true or false/);
  assert.throws(() => loadRegistriesConf({ CONTAINERS_REGISTRIES_CONF: join(dir, "missing") }), /does not exist/);
});
