// SBOM and provenance attestations end to end, through the built CLI: a debian() image with one
// package and a Go binary alone in a scratch image, both judged against what other tools read from
// the same images (dpkg-query on the umoci-unpacked rootfs, the SPDX 2.3 JSON schema, CycloneDX's
// own validator), and their referrers found again in ./oci and in a real docker-registry after
// --push. The debian() bases are the ones examples.test.ts uses, kept in the same shared store.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegistryClient } from "@mstage/runtime";
import { scanKey } from "../packages/runtime/src/sbom/attest.ts";
import { REPO, copyProject, expectOk, mstageAs, testUsers, tool } from "./up-harness.ts";
import { registryUnavailable, startRegistry, type RunningRegistry } from "./helpers/registry.ts";
import { testCachePath } from "./helpers/rootfs.ts";

const root = testUsers()[0]!;
const cacheDir = testCachePath(process.getuid?.() ?? 0);
/**
 * The SPDX 2.3 JSON schema (spdx/spdx-spec, branch support/2.3, schemas/spdx-schema.json). It is not
 * ours to commit: it is read from shared/ beside the checkout (where CI lays it) or MSTAGE_SPDX_SCHEMA.
 */
const SPDX_SCHEMA =
  process.env.MSTAGE_SPDX_SCHEMA ??
  [join(REPO, "..", "shared", "spdx", "spdx-2.3-schema.json"), join(REPO, "..", "..", "shared", "spdx", "spdx-2.3-schema.json")].find((p) => existsSync(p)) ??
  join(REPO, "..", "shared", "spdx", "spdx-2.3-schema.json");

function whyNot(): string | undefined {
  const missing = ["mmdebstrap", "dpkg-query", "tar"].filter((t) => !tool(t));
  if (missing.length) return `missing ${missing.join(", ")}: run .ci/setup`;
  if (process.getuid?.() !== 0) return "builds debian() bases as root in mstage's namespace; run as root";
  return registryUnavailable();
}

interface IndexEntry {
  digest: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

describe("SBOM and provenance attestations", { skip: whyNot() }, () => {
  let project: string;
  let reg: RunningRegistry;
  const store = join(cacheDir, "examples-store");
  let mstage: ReturnType<typeof mstageAs>;
  const layout = () => join(project, "oci");
  const index = (dir = layout()) => (JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as { manifests: IndexEntry[] }).manifests;
  const blob = (digest: string, dir = layout()) => readFileSync(join(dir, "blobs", "sha256", digest.slice(7)));
  const json = <T>(digest: string, dir = layout()) => JSON.parse(blob(digest, dir).toString("utf8")) as T;
  const refDigest = (ref: string, dir = layout()) => {
    const d = index(dir).find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === ref)?.digest;
    assert.ok(d, `no ref ${ref} in ${dir}`);
    return d;
  };
  /** The referrers of `subject` in a layout: artifact type → the document bytes. */
  const referrers = (subject: string, dir = layout()) => {
    const out = new Map<string, Buffer>();
    for (const m of index(dir)) {
      if (!m.artifactType) continue;
      const manifest = json<{ subject: { digest: string }; layers: Array<{ digest: string }>; artifactType: string }>(m.digest, dir);
      assert.equal(manifest.artifactType, m.artifactType);
      if (manifest.subject.digest === subject) out.set(m.artifactType, blob(manifest.layers[0]!.digest, dir));
    }
    return out;
  };

  before(async () => {
    mkdirSync(store, { recursive: true });
    reg = await startRegistry();
    project = copyProject(join(REPO, "test", "fixtures", "sbom"), root.name, "sbom");
    const file = join(project, "images.ts");
    writeFileSync(file, readFileSync(file, "utf8").replace("localhost:5000", reg.host));
    mstage = mstageAs(root.name, project, store);
  });
  after(async () => {
    await reg?.stop();
    if (project) rmSync(project, { recursive: true, force: true });
  });

  let hello: string;
  let greeter: string;
  let firstSbom: Buffer;
  let firstProvenance: Record<string, unknown>;

  test("up attaches an SPDX SBOM and a provenance to each exported image, as referrers in ./oci", async () => {
    expectOk(await mstage(["up", "--progress", "plain"]), "up");
    hello = refDigest("hello");
    greeter = refDigest("greeter");
    for (const image of [hello, greeter]) {
      const found = referrers(image);
      assert.deepEqual([...found.keys()].sort(), ["application/spdx+json", "application/vnd.in-toto+json"], `referrers of ${image}`);
    }
    firstSbom = referrers(hello).get("application/spdx+json")!;
    firstProvenance = JSON.parse(referrers(hello).get("application/vnd.in-toto+json")!.toString("utf8"));
  });

  test("the SBOM's Debian packages are what dpkg-query reads from the unpacked image, with their purls", () => {
    const doc = JSON.parse(firstSbom.toString("utf8")) as { packages: Array<{ name: string; versionInfo?: string; externalRefs?: Array<{ referenceLocator: string }> }> };
    const debs = doc.packages
      .map((p) => p.externalRefs?.[0]?.referenceLocator ?? "")
      .filter((purl) => purl.startsWith("pkg:deb/"))
      .sort();
    // The image's dpkg database, unpacked from its layers in order with tar (umoci unpack of the
    // whole 60 MB rootfs takes half a minute on a loaded machine and reads the same files).
    const dpkgRoot = mkdtempSync(join(tmpdir(), "mstage-sbom-dpkg-"));
    try {
      for (const l of json<{ layers: Array<{ digest: string }> }>(hello).layers) {
        spawnSync("tar", ["-xzf", join(layout(), "blobs", "sha256", l.digest.slice(7)), "-C", dpkgRoot, "--wildcards", "var/lib/dpkg/*", "./var/lib/dpkg/*"], { stdio: "ignore" });
      }
      const listed = execFileSync("dpkg-query", [`--admindir=${join(dpkgRoot, "var", "lib", "dpkg")}`, "-W", "-f", "${Package}\\t${Version}\\t${Architecture}\\n"], { encoding: "utf8" });
      const want = listed
        .trim()
        .split("\n")
        .map((l) => l.split("\t") as [string, string, string])
        .map(([name, version, arch]) => `pkg:deb/debian/${encodeURIComponent(name)}@${encodeURIComponent(version)}?arch=${arch}&distro=debian-12`)
        .sort();
      assert.ok(want.length > 50, `dpkg-query listed ${want.length} packages`);
      assert.deepEqual(debs, want);
      const version = listed.split("\n").find((l) => l.startsWith("hello\t"))!.split("\t")[1]!;
      assert.ok(debs.includes(`pkg:deb/debian/hello@${version}?arch=amd64&distro=debian-12`), "the hello package's purl");
      const owned = doc.packages.find((p) => p.name === "hello" && (p as { SPDXID?: string }).SPDXID?.startsWith("SPDXRef-Package-deb-")) as unknown as { hasFiles: string[] };
      assert.ok(owned.hasFiles.length >= 2, "hello owns its files (/usr/bin/hello, its docs)");
    } finally {
      rmSync(dpkgRoot, { recursive: true, force: true });
    }
  });

  test("the SPDX document validates against the SPDX 2.3 JSON schema", async (t) => {
    // No npm or Debian package ships the schema (nor a JavaScript library that checks SPDX 2.3's
    // rules), and it is not ours to commit: it is read from where CI lays it, if it does.
    if (!existsSync(SPDX_SCHEMA)) {
      return t.skip(`no SPDX 2.3 schema at ${SPDX_SCHEMA}: no npm or Debian package ships spdx/spdx-spec's schemas/spdx-schema.json (support/2.3); put it there or set MSTAGE_SPDX_SCHEMA`);
    }
    // Both are CommonJS: under NodeNext their callable export sits on `default`.
    const { Ajv } = await import("ajv");
    const addFormats = (await import("ajv-formats")).default.default;
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync(SPDX_SCHEMA, "utf8")));
    for (const image of [hello, greeter]) {
      const doc = JSON.parse(referrers(image).get("application/spdx+json")!.toString("utf8"));
      assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 5)));
    }
  });

  test("mstage sbom --format cyclonedx validates with CycloneDX's own 1.5 validator", async () => {
    const { Spec, Validation } = await import("@cyclonedx/cyclonedx-library");
    const validator = new Validation.JsonStrictValidator(Spec.Version.v1dot5);
    for (const name of ["hello", "greeter"]) {
      const out = expectOk(await mstage(["sbom", name, "--format", "cyclonedx"]), `sbom ${name}`).stdout;
      assert.equal(await validator.validate(out), null, `CycloneDX of ${name}`);
      assert.equal(JSON.parse(out).specVersion, "1.5");
    }
  });

  test("a Go binary in a scratch image is listed with its modules from its build info (and npm and apk packages beside it)", async () => {
    const doc = JSON.parse(referrers(greeter).get("application/spdx+json")!.toString("utf8")) as { packages: Array<{ name: string; versionInfo?: string; externalRefs?: Array<{ referenceLocator: string }> }> };
    const purls = doc.packages.map((p) => p.externalRefs?.[0]?.referenceLocator ?? "");
    assert.ok(purls.includes("pkg:golang/example.com/greet@v0.1.0"), purls.join("\n"));
    assert.ok(purls.includes("pkg:golang/example.com/greeter"), "the main module");
    assert.ok(purls.some((p) => /^pkg:golang\/stdlib@go1\.\d+/.test(p)), "the Go toolchain");
    assert.ok(purls.includes("pkg:npm/%40acme/left-pad@1.3.0"), "the npm package under node_modules");
    assert.ok(purls.includes("pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"), "the apk database's package");
    const table = expectOk(await mstage(["sbom", "greeter", "--format", "table"]), "sbom table").stdout;
    assert.match(table, /golang\s+example\.com\/greet\s+v0\.1\.0/);
  });

  test("the provenance is an in-toto SLSA v1 statement naming images.ts by sha256 and the debian() base", () => {
    const p = firstProvenance as {
      _type: string;
      subject: Array<{ digest: { sha256: string } }>;
      predicateType: string;
      predicate: { buildDefinition: { externalParameters: { config: { digest: { sha256: string } } }; resolvedDependencies: Array<{ uri: string; digest: Record<string, string> }> } };
    };
    assert.equal(p._type, "https://in-toto.io/Statement/v1");
    assert.equal(p.predicateType, "https://slsa.dev/provenance/v1");
    assert.equal(`sha256:${p.subject[0]!.digest.sha256}`, hello);
    const sha = createHash("sha256").update(readFileSync(join(project, "images.ts"))).digest("hex");
    assert.equal(p.predicate.buildDefinition.externalParameters.config.digest.sha256, sha);
    // The debian() base's identity as the plan keyed it (the state records the inputs of each build).
    const state = JSON.parse(readFileSync(join(project, ".mstage", "state.json"), "utf8")) as { stages: Record<string, { inputs: { base: { identity: string } } }> };
    const identity = state.stages.hello!.inputs.base.identity;
    const base = p.predicate.buildDefinition.resolvedDependencies.find((d) => d.uri.startsWith("debian:bookworm"));
    assert.ok(base, JSON.stringify(p.predicate.buildDefinition.resolvedDependencies));
    assert.equal(`sha256:${base.digest.sha256}`, identity.startsWith("sha256:") ? identity : `sha256:${identity}`);
  });

  test("ls shows the attestations; a no-op up keeps them; --sbom=false attaches none and leaves the image digest alone", async () => {
    const ls = expectOk(await mstage(["ls"]), "ls").stdout;
    assert.match(ls, /ATTESTATIONS/);
    assert.match(ls, /^hello\s.*provenance,sbom$/m);
    const started = Date.now();
    const noop = expectOk(await mstage(["up"]), "no-op up");
    process.stderr.write(`# no-op up with attestations: ${Date.now() - started} ms\n`);
    assert.match(noop.stdout, /0 built/);
    assert.equal(referrers(hello).size, 2);
    const plain = join(project, "oci-plain");
    expectOk(await mstage(["up", "--sbom=false", "--output", `oci:${plain}`]), "up --sbom=false");
    assert.equal(refDigest("hello", plain), hello, "attaching referrers does not change the image");
    assert.equal(refDigest("greeter", plain), greeter);
    assert.equal(index(plain).filter((m) => m.artifactType).length, 0);
  });

  test("a second clean build gives the same SBOM bytes and the same provenance apart from its times", async () => {
    // Clean: no output, no cached scans of these images, the Go stage built again.
    rmSync(layout(), { recursive: true, force: true });
    for (const image of [hello, greeter]) {
      const config = json<{ config: { digest: string } }>(image, join(project, "oci-plain")).config.digest;
      const diffIds = json<{ rootfs: { diff_ids: string[] } }>(config, join(project, "oci-plain")).rootfs.diff_ids;
      rmSync(join(store, "attestations", `scan-${scanKey(diffIds as never)}.json`), { force: true });
    }
    expectOk(await mstage(["up", "--rebuild", "build", "--progress", "plain"]), "second up");
    assert.equal(refDigest("hello"), hello);
    assert.equal(refDigest("greeter"), greeter, "the Go stage rebuilds to the same image");
    assert.ok(referrers(hello).get("application/spdx+json")!.equals(firstSbom), "same SBOM bytes");
    const again = JSON.parse(referrers(hello).get("application/vnd.in-toto+json")!.toString("utf8"));
    const withoutTimes = (s: Record<string, unknown>) => {
      const c = structuredClone(s) as { predicate: { runDetails: { metadata: Record<string, unknown> }; buildDefinition: { externalParameters: { args?: unknown } } } };
      delete c.predicate.runDetails.metadata.startedOn;
      delete c.predicate.runDetails.metadata.finishedOn;
      delete c.predicate.buildDefinition.externalParameters.args;
      return c;
    };
    assert.deepEqual(withoutTimes(again), withoutTimes(firstProvenance));
  });

  test("up --push attaches the referrers in the registry: referrers API where it answers, the sha256-<hex> tag otherwise", async () => {
    const r = expectOk(await mstage(["up", "--push", "--progress", "plain"]), "up --push");
    assert.match(r.stderr, /attestation\(s\) attached/);
    const client = new RegistryClient();
    try {
      const get = async (path: string, accept: string) => {
        const res = await client.request(reg.host, { method: "GET", path, scopes: [], headers: { accept }, ok: [200, 404], what: path });
        const chunks: Buffer[] = [];
        for await (const c of res.body as AsyncIterable<Buffer>) chunks.push(c);
        return { status: res.status, body: Buffer.concat(chunks) };
      };
      const api = await get(`/v2/sbom/hello/referrers/${hello}`, "application/vnd.oci.image.index.v1+json");
      let listed: IndexEntry[];
      if (api.status === 200) listed = (JSON.parse(api.body.toString("utf8")) as { manifests: IndexEntry[] }).manifests;
      else {
        const tagged = await get(`/v2/sbom/hello/manifests/sha256-${hello.slice(7)}`, "application/vnd.oci.image.index.v1+json");
        assert.equal(tagged.status, 200, "the tag-schema fallback index");
        listed = (JSON.parse(tagged.body.toString("utf8")) as { manifests: IndexEntry[] }).manifests;
      }
      assert.deepEqual(listed.map((m) => m.artifactType).sort(), ["application/spdx+json", "application/vnd.in-toto+json"]);
      for (const m of listed) {
        const manifest = JSON.parse((await get(`/v2/sbom/hello/manifests/${m.digest}`, "application/vnd.oci.image.manifest.v1+json")).body.toString("utf8")) as {
          subject: { digest: string };
          layers: Array<{ digest: string }>;
        };
        assert.equal(manifest.subject.digest, hello);
        if (m.artifactType === "application/spdx+json") {
          const doc = await get(`/v2/sbom/hello/blobs/${manifest.layers[0]!.digest}`, "*/*");
          assert.ok(doc.body.equals(referrers(hello).get("application/spdx+json")!), "the pushed SBOM is the layout's");
        }
      }
      const pushed = await get(`/v2/sbom/hello/manifests/1`, "application/vnd.oci.image.manifest.v1+json");
      assert.equal(`sha256:${createHash("sha256").update(pushed.body).digest("hex")}`, hello, "the pushed image keeps its digest");
    } finally {
      await client.close();
    }
  });

  test("an image on an already scanned layer reads that layer's record: only its own new layer's files are read", async () => {
    const helloLayers = json<{ rootfs: { diff_ids: string[] } }>(json<{ config: { digest: string } }>(hello).config.digest).rootfs.diff_ids;
    const record = join(store, "attestations", `layer-${helloLayers.at(-1)!.slice(7)}.json`);
    assert.ok(existsSync(record), `the scan of hello kept a record of its layer (${record})`);
    const before = { bytes: readFileSync(record), mtime: statSync(record).mtimeMs };
    assert.ok(Object.keys((JSON.parse(before.bytes.toString("utf8")) as { checksums: Record<string, unknown> }).checksums).includes("usr/bin/hello"), "the record has hello's own files");
    const file = join(project, "images.ts");
    writeFileSync(file, readFileSync(file, "utf8") + `\nexport const motd = stage("motd", { from: hello, copy: { "/etc/motd": inline("scanned once\\n") } });\n`);
    expectOk(await mstage(["up", "motd", "--progress", "plain"]), "up motd");
    const doc = JSON.parse(referrers(refDigest("motd")).get("application/spdx+json")!.toString("utf8")) as { packages: Array<{ name: string }>; files: Array<{ fileName: string; checksums: Array<{ algorithm: string; checksumValue: string }> }> };
    const helloDoc = JSON.parse(firstSbom.toString("utf8")) as typeof doc;
    assert.ok(doc.packages.some((p) => p.name === "hello"), "motd's SBOM lists the hello package of the layer below it");
    const sums = (d: typeof doc) => JSON.stringify(d.files.find((f) => f.fileName.endsWith("usr/bin/hello"))?.checksums);
    assert.equal(sums(doc), sums(helloDoc), "with the checksums the record kept");
    assert.ok(readFileSync(record).equals(before.bytes) && statSync(record).mtimeMs === before.mtime, "the base layer's record was read, not made again");
  });
});
