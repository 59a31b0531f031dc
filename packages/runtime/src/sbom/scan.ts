// Scans a mounted image filesystem for packages: the dpkg and apk databases, Go binaries' build
// info, and npm packages under node_modules; every file a package owns is hashed once (SHA-1 for
// SPDX's required checksum, SHA-256 beside it). The result is sorted, so the same filesystem
// always gives the same scan. What is costly per file (its checksums, a Go binary's build info)
// comes through FileFacts, which attest.ts serves from a cache kept per layer.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, open, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { forEachLimit } from "../registry/pull.ts";
import { existingInRoot, hostPathInRoot } from "../sandbox/paths.ts";
import { parseApkInstalled } from "./apk.ts";
import { parseCopyright, parseFileList, parseStatus, type DpkgEntry } from "./dpkg.ts";
import { readGoBuildInfo, type GoBuildInfo, type GoModule } from "./gobuildinfo.ts";
import { purl } from "./purl.ts";
import { SCAN_VERSION, type FoundFile, type FoundPackage, type ImageScan } from "./types.ts";

const SKIP_DIRS = new Set(["/proc", "/sys", "/dev"]);
const MAX_TEXT = 4 << 20;
const SCAN_JOBS = 16;

/** The costly facts of one regular file of the image: `path` in the image, `host` the file itself. */
export interface FileFacts {
  checksums(path: string, host: string): Promise<{ sha1: string; sha256: string }>;
  goBuildInfo(path: string, host: string): Promise<GoBuildInfo | undefined>;
}

/** Every fact read from the file, nothing cached. */
export const directFacts: FileFacts = { checksums: (_path, host) => hashFile(host), goBuildInfo: (_path, host) => readGoBinary(host) };

export async function scanRootfs(root: string, facts: FileFacts = directFacts): Promise<ImageScan> {
  const distro = await readOsRelease(root);
  const packages: FoundPackage[] = [...(await scanDpkg(root, distro)), ...(await scanApk(root, distro))];
  const executables: string[] = [];
  const npmManifests: string[] = [];
  await walk(root, "/", executables, npmManifests);
  const goInfo = await mapLimited(executables, (path) => facts.goBuildInfo(path, join(root, path)));
  executables.forEach((path, i) => packages.push(...goPackages(path, goInfo[i])));
  for (const path of npmManifests) {
    const p = await scanNpmPackage(root, path);
    if (p) packages.push(p);
  }
  packages.sort(comparePackages);

  const owned = new Set(packages.flatMap((p) => p.files));
  const found = await mapLimited([...owned].sort(), async (path): Promise<FoundFile | undefined> => {
    // A listed symlink is not followed: only regular files at their own path are the package's.
    const host = hostPathInRoot(root, path);
    const st = await lstat(host).catch(() => undefined);
    return st?.isFile() ? { path, ...(await facts.checksums(path, host)) } : undefined;
  });
  const files = found.filter((f): f is FoundFile => f !== undefined);
  // A package's files are those that are regular files in the image (lists name directories too).
  const present = new Set(files.map((f) => f.path));
  for (const p of packages) p.files = p.files.filter((f) => present.has(f)).sort();
  return { version: SCAN_VERSION, ...(distro ? { distro } : {}), packages, files };
}

/**
 * fn over items, SCAN_JOBS at a time, results in the items' order: a scan reads thousands of small
 * files, and one at a time it waits on each open and read in turn.
 */
async function mapLimited<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  await forEachLimit([...items.keys()], SCAN_JOBS, async (i) => void (out[i] = await fn(items[i]!)));
  return out;
}

async function readText(root: string, path: string): Promise<string | undefined> {
  try {
    const host = hostPathInRoot(root, path, { followLast: true });
    const st = await lstat(host);
    if (!st.isFile() || st.size > MAX_TEXT) return undefined;
    return await readFile(host, "utf8");
  } catch {
    return undefined;
  }
}

async function readOsRelease(root: string): Promise<ImageScan["distro"]> {
  const text = (await readText(root, "/etc/os-release")) ?? (await readText(root, "/usr/lib/os-release"));
  if (!text) return undefined;
  const v = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(text)?.[1]?.trim().replace(/^"(.*)"$/, "$1");
  const id = v("ID");
  if (!id) return undefined;
  const versionId = v("VERSION_ID");
  const name = v("PRETTY_NAME");
  return { id, ...(versionId ? { versionId } : {}), ...(name ? { name } : {}) };
}

function distroQualifier(distro: ImageScan["distro"]): string | undefined {
  return distro ? `${distro.id}${distro.versionId ? `-${distro.versionId}` : ""}` : undefined;
}

async function scanDpkg(root: string, distro: ImageScan["distro"]): Promise<FoundPackage[]> {
  const entries: Array<DpkgEntry & { db: string }> = [];
  const status = await readText(root, "/var/lib/dpkg/status");
  if (status !== undefined) entries.push(...parseStatus(status).map((e) => ({ ...e, db: "/var/lib/dpkg/status" })));
  const statusD = existingInRoot(root, "/var/lib/dpkg/status.d");
  for (const name of statusD ? ((await readdir(statusD).catch(() => [])) as string[]).sort() : []) {
    if (name.endsWith(".md5sums")) continue;
    const text = await readText(root, `/var/lib/dpkg/status.d/${name}`);
    // distroless writes one paragraph per file and no Status field.
    if (text !== undefined) entries.push(...parseStatus(text, false).map((e) => ({ ...e, db: `/var/lib/dpkg/status.d/${name}` })));
  }
  const vendor = distro?.id ?? "debian";
  const out: FoundPackage[] = [];
  for (const e of entries) {
    let list = await readText(root, `/var/lib/dpkg/info/${e.name}:${e.arch}.list`);
    list ??= await readText(root, `/var/lib/dpkg/info/${e.name}.list`);
    const copyright = await readText(root, `/usr/share/doc/${e.name}/copyright`);
    out.push({
      kind: "deb",
      name: e.name,
      version: e.version,
      arch: e.arch,
      licenses: copyright ? parseCopyright(copyright) : [],
      purl: purl("deb", vendor, e.name, e.version, { arch: e.arch, distro: distroQualifier(distro) }),
      files: list ? parseFileList(list) : [],
      foundIn: e.db,
      ...(e.source ? { sourceName: e.source } : {}),
    });
  }
  return out;
}

async function scanApk(root: string, distro: ImageScan["distro"]): Promise<FoundPackage[]> {
  const text = await readText(root, "/lib/apk/db/installed");
  if (text === undefined) return [];
  return parseApkInstalled(text).map((e) => ({
    kind: "apk" as const,
    name: e.name,
    version: e.version,
    ...(e.arch ? { arch: e.arch } : {}),
    licenses: e.license ? [e.license] : [],
    purl: purl("apk", distro?.id ?? "alpine", e.name, e.version, { arch: e.arch, distro: distroQualifier(distro) }),
    files: e.files,
    foundIn: "/lib/apk/db/installed",
    ...(e.origin ? { sourceName: e.origin } : {}),
    ...(e.checksum ? { checksum: e.checksum } : {}),
  }));
}

/** Collects executable regular files (Go binary candidates) and node_modules package.json files. */
async function walk(root: string, dir: string, executables: string[], npm: string[]): Promise<void> {
  const host = join(root, dir);
  let entries;
  try {
    entries = await readdir(host, { withFileTypes: true });
  } catch {
    return;
  }
  const inNodeModules = dir.endsWith("/node_modules") || /\/node_modules\/@[^/]+$/.test(dir);
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = dir === "/" ? `/${e.name}` : `${dir}/${e.name}`;
    if (e.isDirectory()) {
      if (SKIP_DIRS.has(path)) continue;
      if (inNodeModules && !e.name.startsWith("@") && !e.name.startsWith(".")) {
        const st = await lstat(join(host, e.name, "package.json")).catch(() => undefined);
        if (st?.isFile()) npm.push(`${path}/package.json`);
      }
      await walk(root, path, executables, npm);
    } else if (e.isFile()) {
      const st = await lstat(join(host, e.name)).catch(() => undefined);
      if (st && st.mode & 0o111 && st.size > 4096) executables.push(path);
    }
  }
}

/** A file's Go build info, or undefined when it is no Go binary (or cannot be read). */
export async function readGoBinary(host: string): Promise<GoBuildInfo | undefined> {
  const fh = await open(host, "r").catch(() => undefined);
  if (!fh) return undefined;
  try {
    return await readGoBuildInfo(fh);
  } catch {
    return undefined;
  } finally {
    await fh.close();
  }
}

function goPackages(path: string, info: GoBuildInfo | undefined): FoundPackage[] {
  if (!info) return [];
  const mod = (m: GoModule, files: string[]): FoundPackage => {
    const version = m.version === "(devel)" ? "" : m.version;
    return {
      kind: "golang",
      name: m.path,
      version: m.version,
      licenses: [],
      purl: purl("golang", dirnameOf(m.path), basenameOf(m.path), version || undefined),
      files,
      foundIn: path,
      ...(m.replacedBy ? { sourceName: `replaced by ${m.replacedBy.path}${m.replacedBy.version && m.replacedBy.version !== "(devel)" ? `@${m.replacedBy.version}` : ""}` } : {}),
      ...((m.replacedBy?.sum ?? m.sum) ? { checksum: m.replacedBy?.sum ?? m.sum } : {}),
    };
  };
  const out: FoundPackage[] = [];
  // A binary built outside module mode names only its package: that is its "main module".
  const main = info.main ?? (info.path ? { path: info.path, version: "(devel)" } : undefined);
  if (main) out.push(mod(main, [path]));
  for (const d of info.deps) out.push(mod(d, []));
  out.push({ kind: "golang", name: "stdlib", version: info.goVersion, licenses: ["BSD-3-Clause"], purl: purl("golang", undefined, "stdlib", info.goVersion), files: [], foundIn: path });
  return out;
}

async function scanNpmPackage(root: string, path: string): Promise<FoundPackage | undefined> {
  const text = await readText(root, path);
  if (!text) return undefined;
  let pkg: { name?: unknown; version?: unknown; license?: unknown };
  try {
    pkg = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof pkg.name !== "string" || typeof pkg.version !== "string") return undefined;
  const [scope, name] = pkg.name.startsWith("@") ? (pkg.name.split("/", 2) as [string, string]) : [undefined, pkg.name];
  const license = typeof pkg.license === "string" ? pkg.license : (pkg.license as { type?: string } | undefined)?.type;
  return {
    kind: "npm",
    name: pkg.name,
    version: pkg.version,
    licenses: typeof license === "string" ? [license] : [],
    purl: purl("npm", scope, name ?? pkg.name, pkg.version),
    files: [path],
    foundIn: path,
  };
}

export async function hashFile(path: string): Promise<{ sha1: string; sha256: string }> {
  const sha1 = createHash("sha1");
  const sha256 = createHash("sha256");
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    sha1.update(chunk);
    sha256.update(chunk);
  }
  return { sha1: sha1.digest("hex"), sha256: sha256.digest("hex") };
}

function dirnameOf(p: string): string | undefined {
  const i = p.lastIndexOf("/");
  return i > 0 ? p.slice(0, i) : undefined;
}

function basenameOf(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

function comparePackages(a: FoundPackage, b: FoundPackage): number {
  const ka = [a.kind, a.name, a.version, a.arch ?? "", a.foundIn];
  const kb = [b.kind, b.name, b.version, b.arch ?? "", b.foundIn];
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
  return 0;
}
