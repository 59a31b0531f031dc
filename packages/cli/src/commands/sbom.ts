// `mstage sbom <image|stage>`: the SBOM attached to an image of the project's output layout (./oci
// beside images.ts), as SPDX, CycloneDX or a table. The attached document is printed as it is; the
// other format is made from the scan the store keeps for the image's layers.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import kleur from "kleur";
import { UserError, canonicalJson } from "@mstage/core";
import type { FoundPackage, ImageScan } from "@mstage/runtime";
import type { GlobalOptions } from "../options.ts";
import { MSTAGE_VERSION } from "../app/attest-options.ts";

const SPDX = "application/spdx+json";
const CYCLONEDX = "application/vnd.cyclonedx+json";

interface IndexEntry {
  digest: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export default async function sbom(args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const name = args[0]!;
  const format = String(opts.format ?? (process.stdout.isTTY ? "table" : "spdx"));
  if (!["spdx", "cyclonedx", "table"].includes(format)) throw new UserError(`--format ${JSON.stringify(format)}: write spdx, cyclonedx or table`);
  kleur.enabled = g.color && process.stdout.isTTY === true;

  const layout = join(dirname(g.file), "oci");
  const blob = (digest: string) => {
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new UserError(`${layout}/index.json names an invalid digest ${JSON.stringify(digest)}`);
    return readFileSync(join(layout, "blobs", "sha256", digest.slice(7)));
  };
  if (!existsSync(join(layout, "index.json"))) throw new UserError(`no output layout at ${layout}: run \`mstage up\` first`);
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests?: IndexEntry[] };
  const entries = index.manifests ?? [];
  const image = entries.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === name);
  if (!image) {
    const refs = entries.flatMap((m) => m.annotations?.["org.opencontainers.image.ref.name"] ?? []);
    throw new UserError(`${layout} has no image "${name}"${refs.length ? `; it has ${refs.join(", ")}` : ""}`);
  }
  let attached: { type: string; bytes: Buffer } | undefined;
  for (const m of entries.filter((e) => e.annotations?.["dev.mstage.attestation"] === "sbom")) {
    const manifest = JSON.parse(blob(m.digest).toString("utf8")) as { subject?: { digest: string }; layers?: Array<{ digest: string; mediaType: string }> };
    const layer = manifest.layers?.[0];
    if (manifest.subject?.digest === image.digest && layer) attached = { type: layer.mediaType, bytes: blob(layer.digest) };
  }
  if (!attached) throw new UserError(`image "${name}" (${image.digest}) carries no SBOM: build it with \`mstage up\` (without --sbom=false)`);

  const want = format === "spdx" ? SPDX : format === "cyclonedx" ? CYCLONEDX : undefined;
  if (want === attached.type) {
    await print(attached.bytes.toString("utf8").trimEnd() + "\n");
    return 0;
  }
  const scan = await scanOf(g.store, blob, image.digest);
  if (!scan) {
    if (format === "table") {
      await print(renderTable(packagesOfDocument(attached.type, attached.bytes)));
      return 0;
    }
    throw new UserError(`image "${name}" carries a ${attached.type === SPDX ? "SPDX" : "CycloneDX"} SBOM and the store no longer has its scan: run \`mstage up --sbom-format ${format}\``);
  }
  if (format === "table") {
    await print(renderTable(scan.packages.map((p) => ({ kind: p.kind, name: p.name, version: p.version, arch: p.arch ?? "", license: p.licenses.join(", "), purl: p.purl }))));
    return 0;
  }
  const runtime = await import("@mstage/runtime");
  const manifest = JSON.parse(blob(image.digest).toString("utf8")) as { config: { digest: string }; annotations?: Record<string, string> };
  const config = JSON.parse(blob(manifest.config.digest).toString("utf8")) as { os: string; architecture: string; created?: string };
  const baseName = manifest.annotations?.["org.opencontainers.image.base.name"];
  const baseDigest = manifest.annotations?.["org.opencontainers.image.base.digest"];
  const subject = {
    name,
    digest: runtime.parseDigest(image.digest),
    platform: `${config.os}/${config.architecture}`,
    bases: baseName && baseDigest ? [{ name: baseName, digest: runtime.parseDigest(baseDigest) }] : [],
    created: config.created ?? new Date(0).toISOString().replace(".000", ""),
  };
  const tool = { name: "mstage", version: MSTAGE_VERSION };
  const text = format === "spdx" ? canonicalJson(runtime.spdxDocument(scan, subject, `mstage-${MSTAGE_VERSION}`)) : await runtime.cyclonedxDocument(scan, subject, tool);
  await print(text.trimEnd() + "\n");
  return 0;
}

/** The store's scan of the image's layers (by the diff-ids in its config), if it still has one. */
async function scanOf(storeDir: string, blob: (d: string) => Buffer, digest: string): Promise<ImageScan | undefined> {
  const runtime = await import("@mstage/runtime");
  const manifest = JSON.parse(blob(digest).toString("utf8")) as { config: { digest: string } };
  const config = JSON.parse(blob(manifest.config.digest).toString("utf8")) as { rootfs?: { diff_ids?: string[] } };
  const store = await runtime.Store.open(storeDir);
  return runtime.cachedScan(store, (config.rootfs?.diff_ids ?? []).map((d) => runtime.parseDigest(d)));
}

interface Row {
  kind: string;
  name: string;
  version: string;
  arch: string;
  license: string;
  purl: string;
}

/** The rows of an attached document, for the table when the store has no scan any more. */
function packagesOfDocument(type: string, bytes: Buffer): Row[] {
  const doc = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
  if (type === SPDX) {
    const pkgs = (doc.packages ?? []) as Array<{ SPDXID: string; name: string; versionInfo?: string; licenseDeclared?: string; externalRefs?: Array<{ referenceLocator: string }> }>;
    return pkgs
      .filter((p) => p.SPDXID.startsWith("SPDXRef-Package-"))
      .map((p) => {
        const purl = p.externalRefs?.[0]?.referenceLocator ?? "";
        return { kind: /^pkg:([^/]+)/.exec(purl)?.[1] ?? "", name: p.name, version: p.versionInfo ?? "", arch: /[?&]arch=([^&]+)/.exec(purl)?.[1] ?? "", license: p.licenseDeclared === "NOASSERTION" ? "" : (p.licenseDeclared ?? ""), purl };
      });
  }
  const comps = (doc.components ?? []) as Array<{ name: string; version?: string; purl?: string }>;
  return comps.map((c) => ({ kind: /^pkg:([^/]+)/.exec(c.purl ?? "")?.[1] ?? "", name: c.name, version: c.version ?? "", arch: /[?&]arch=([^&]+)/.exec(c.purl ?? "")?.[1] ?? "", license: "", purl: c.purl ?? "" }));
}

function renderTable(rows: Array<Row | (Pick<FoundPackage, "kind" | "name" | "version"> & { arch: string; license: string; purl: string })>): string {
  const head = ["TYPE", "NAME", "VERSION", "ARCH", "LICENSE"];
  const cells = rows.map((r) => [r.kind, r.name, r.version, r.arch, r.license]);
  const widths = head.map((h, i) => Math.min(48, Math.max(h.length, ...cells.map((c) => c[i]!.length))));
  const line = (c: string[]) => c.map((x, i) => (x.length > widths[i]! ? `${x.slice(0, widths[i]! - 1)}…` : x.padEnd(widths[i]!))).join("  ").trimEnd();
  return [kleur.bold(line(head)), ...cells.map(line), kleur.gray(`${rows.length} package(s)`)].join("\n") + "\n";
}

/** main() exits right after the command: a document larger than the pipe's buffer must be flushed first. */
function print(text: string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(text, (e) => (e ? reject(e) : resolve())));
}
