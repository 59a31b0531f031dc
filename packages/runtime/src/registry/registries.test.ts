import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatReference } from "./reference.ts";
import { insecureHosts, loadRegistriesConf, parseRegistriesConf, pullEndpoints, registriesConfCandidates, registriesConfDirs } from "./registries.ts";

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

test("drop-ins in registries.conf.d are read in order after the main file: a key replaces, a [[registry]] replaces its prefix, aliases merge name by name", () => {
  const home = mkdtempSync(join(tmpdir(), "mstage-regconf-home-"));
  const dir = join(home, ".config", "containers", "registries.conf.d");
  mkdirSync(join(dir, "sub.conf"), { recursive: true }); // a directory, even named *.conf, is not read
  const main = join(home, "main.conf");
  writeFileSync(main, CONF + '\n[aliases]\n"tool" = "quay.io/tools/tool"\n"gone" = "quay.io/x/gone"\n');
  writeFileSync(join(dir, "10-mirror.conf"), '[[registry]]\nprefix = "docker.io"\n[[registry.mirror]]\nlocation = "127.0.0.1:6000"\n');
  writeFileSync(join(dir, "20-search.conf"), 'unqualified-search-registries = ["registry.example.com"]\n[aliases]\n"gone" = ""\n"app" = "registry.example.com/team/app"\n');
  writeFileSync(join(dir, "30-ignored.txt"), "not toml at all [");
  const conf = loadRegistriesConf({ CONTAINERS_REGISTRIES_CONF: main, HOME: home });
  assert.deepEqual(conf.files?.filter((f) => !f.startsWith("/etc/")), [main, join(dir, "10-mirror.conf"), join(dir, "20-search.conf")]);
  assert.deepEqual(conf.search, ["registry.example.com"]);
  assert.equal(conf.searchFile, join(dir, "20-search.conf"));
  const w = (input: string) => pullEndpoints(input, conf).map((e) => formatReference(e.ref) + (e.mirror ? ` (mirror ${e.mirror} of ${e.file})` : "") + (e.alias ? ` [alias in ${e.alias.file}]` : ""));
  assert.deepEqual(w("docker.io/library/golang:1.21"), [`127.0.0.1:6000/library/golang:1.21 (mirror 127.0.0.1:6000 of ${join(dir, "10-mirror.conf")})`, "docker.io/library/golang:1.21"], "the drop-in's docker.io entry replaced the main file's");
  assert.deepEqual(w("zothub.io/c3/x:1"), ["127.0.0.1:5001/c3-copy/x:1"], "other prefixes stay");
  assert.deepEqual(w("tool:2"), [`quay.io/tools/tool:2 [alias in ${main}]`]);
  assert.deepEqual(w("app@sha256:" + "b".repeat(64)), [`registry.example.com/team/app@sha256:${"b".repeat(64)} [alias in ${join(dir, "20-search.conf")}]`]);
  assert.deepEqual(w("gone"), ["registry.example.com/gone:latest"], `"" erases an alias; the short name is searched again`);
});

test("the user's registries.conf brings only the user's drop-ins; the system's file and CONTAINERS_REGISTRIES_CONF bring both", () => {
  assert.deepEqual(registriesConfDirs("/home/u/.config/containers/registries.conf", { HOME: "/home/u" }), ["/home/u/.config/containers/registries.conf.d"]);
  assert.deepEqual(registriesConfDirs("/etc/containers/registries.conf", { HOME: "/home/u" }), ["/etc/containers/registries.conf.d", "/home/u/.config/containers/registries.conf.d"]);
  assert.deepEqual(registriesConfDirs("/x.conf", { HOME: "/home/u", CONTAINERS_REGISTRIES_CONF: "/x.conf" }), ["/etc/containers/registries.conf.d", "/home/u/.config/containers/registries.conf.d"]);
});

test("short names: an alias wins over the search list; enforcing refuses an ambiguous one, permissive tries each; mistakes name the file", () => {
  const conf = (extra: string) => parseRegistriesConf(`unqualified-search-registries = ["quay.io", "docker.io"]\n${extra}`, "/r.conf");
  const refs = (c: ReturnType<typeof conf>, input: string) => pullEndpoints(input, c).map((e) => formatReference(e.ref));
  assert.deepEqual(refs(conf(""), "alpine:3"), ["quay.io/alpine:3", "docker.io/library/alpine:3"], "permissive is the default");
  assert.deepEqual(refs(conf('short-name-mode = "disabled"'), "alpine:3"), ["quay.io/alpine:3", "docker.io/library/alpine:3"]);
  assert.throws(() => refs(conf('short-name-mode = "enforcing"'), "alpine:3"), /alpine:3 is a short name that could come from quay\.io, docker\.io .*add an alias to \[aliases\] in \/r\.conf/);
  assert.deepEqual(refs(conf('short-name-mode = "enforcing"\n[aliases]\n"alpine" = "docker.io/library/alpine"'), "alpine:3"), ["docker.io/library/alpine:3"]);
  assert.deepEqual(refs(parseRegistriesConf('short-name-mode = "enforcing"\nunqualified-search-registries = ["docker.io"]\n', "f"), "alpine"), ["docker.io/library/alpine:latest"], "one search registry is not ambiguous");
  assert.throws(() => refs(parseRegistriesConf("unqualified-search-registries = []\n", "/e.conf"), "alpine"), /\/e\.conf sets no unqualified-search-registries and no alias/);
  assert.throws(() => conf('[aliases]\n"alpine" = "alpine"'), /\/r\.conf: \[aliases\] "alpine" = "alpine": the value must be a fully-qualified name/);
  assert.throws(() => conf('[aliases]\n"alpine" = "docker.io/library/alpine:3"'), /without tag or digest/);
  assert.throws(() => conf('[aliases]\n"quay.io/x" = "quay.io/x"'), /an alias is a short name/);
  assert.throws(() => conf('short-name-mode = "strict"'), /short-name-mode must be/);
});

const SHORTNAMES = "/etc/containers/registries.conf.d/shortnames.conf";
test("this machine's own drop-in, containers-common's shortnames.conf, parses and its aliases apply", { skip: existsSync(SHORTNAMES) ? undefined : `no ${SHORTNAMES} (Debian's golang-github-containers-common)` }, () => {
  const conf = loadRegistriesConf({ HOME: mkdtempSync(join(tmpdir(), "mstage-regconf-sys-")) });
  assert.ok(conf.files?.includes(SHORTNAMES));
  const [e] = pullEndpoints("fedora:40", conf);
  assert.equal(formatReference(e!.ref), "registry.fedoraproject.org/fedora:40");
  assert.equal(e!.alias?.file, SHORTNAMES);
});
