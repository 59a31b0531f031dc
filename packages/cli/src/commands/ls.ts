// `mstage ls`: the project's outputs (the default OCI layout ./oci beside images.ts) and the stage
// results in the store, most recently used first, with digests, sizes and ages.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import kleur from "kleur";
import { isSha256Digest } from "@mstage/core";
import { Store } from "@mstage/runtime";
import type { GlobalOptions } from "../options.ts";
import { formatSize } from "../render/progress.ts";

export function formatAge(from: Date, now = new Date()): string {
  const s = Math.max(0, Math.round((now.getTime() - from.getTime()) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

interface OutputRow {
  ref: string;
  digest: string;
  size: number;
  written: Date;
  /** Kinds of the attestations attached to it (sbom, provenance). */
  attestations: string[];
}

/** The refs of an OCI layout with each image's size (manifest + config + layers, as stored). */
function readLayout(dir: string): OutputRow[] {
  const indexFile = join(dir, "index.json");
  if (!existsSync(indexFile) || !existsSync(join(dir, "oci-layout"))) return [];
  const written = statSync(indexFile).mtime;
  const index = JSON.parse(readFileSync(indexFile, "utf8")) as {
    manifests?: Array<{ digest: string; size: number; annotations?: Record<string, string> }>;
  };
  const attestations = new Map<string, string[]>();
  for (const m of index.manifests ?? []) {
    const kind = m.annotations?.["dev.mstage.attestation"];
    if (!kind) continue;
    try {
      const subject = (JSON.parse(readFileSync(join(dir, "blobs", ...m.digest.split(":")), "utf8")) as { subject?: { digest?: string } }).subject?.digest;
      if (subject) attestations.set(subject, [...(attestations.get(subject) ?? []), kind].sort());
    } catch {
      // A referrer without its blob attests nothing we can show.
    }
  }
  return (index.manifests ?? []).filter((m) => !m.annotations?.["dev.mstage.attestation"]).map((m) => {
    let size = m.size;
    try {
      // The index is outside input: its digest names a file only once it is a digest.
      if (!isSha256Digest(m.digest)) throw new Error("not a digest");
      const manifest = JSON.parse(readFileSync(join(dir, "blobs", "sha256", m.digest.slice("sha256:".length)), "utf8")) as {
        config?: { size: number };
        layers?: Array<{ size: number }>;
      };
      size += (manifest.config?.size ?? 0) + (manifest.layers ?? []).reduce((n, l) => n + l.size, 0);
    } catch {
      // An index entry without its manifest blob: show the manifest's own size.
    }
    return { ref: m.annotations?.["org.opencontainers.image.ref.name"] ?? "(no name)", digest: m.digest, size, written, attestations: attestations.get(m.digest) ?? [] };
  });
}

function table(head: string[], rows: string[][], right: Set<number>): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ").trimEnd();
  return [kleur.bold(line(head)), ...rows.map(line)].join("\n") + "\n";
}

export default async function ls(_args: string[], _opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  kleur.enabled = g.color && process.stdout.isTTY === true;
  const layoutDir = join(dirname(g.file), "oci");
  const outputs = existsSync(g.file) ? readLayout(layoutDir) : [];
  const store = await Store.open(g.store);
  const results = store.list();
  if (g.quiet) {
    for (const o of outputs) process.stdout.write(`${o.ref} ${o.digest}\n`);
    for (const r of results) process.stdout.write(`${r.key}\n`);
    return 0;
  }
  if (outputs.length) {
    process.stdout.write(kleur.cyan(`outputs in ${shortPath(layoutDir)}`) + "\n");
    const rows = outputs.map((o) => [o.ref, o.digest.slice(0, 19), formatSize(o.size), formatAge(o.written), o.attestations.join(",") || "-"]);
    process.stdout.write(table(["REF", "DIGEST", "SIZE", "WRITTEN", "ATTESTATIONS"], rows, new Set([2])) + "\n");
  }
  if (!results.length) {
    process.stdout.write(`no stages in the store ${g.store}\n`);
    return 0;
  }
  process.stdout.write(kleur.cyan(`stages in the store ${g.store}`) + "\n");
  const rows = results.map((r) => [
    r.key.replace(/^sha256:/, "").slice(0, 12),
    r.stage ?? "?",
    r.project ? shortPath(r.project) : "",
    String(r.layers),
    formatSize(r.ownSize),
    formatSize(r.size),
    formatAge(r.stored),
    formatAge(r.lastUsed),
  ]);
  process.stdout.write(table(["KEY", "STAGE", "PROJECT", "LAYERS", "LAYER", "IMAGE", "BUILT", "USED"], rows, new Set([3, 4, 5])));
  process.stdout.write(kleur.gray(`${results.length} result(s); LAYER is the stage's own layer, IMAGE its whole chain (uncompressed)`) + "\n");
  return 0;
}

function shortPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel === "" ? "." : rel.startsWith("..") ? p : rel;
}
