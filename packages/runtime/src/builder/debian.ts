// debian() bases: a Debian root filesystem made from packages with mmdebstrap, no base image. Inside
// mstage's user namespace we are root over a full id range, so `--mode=root` works and is the
// fastest; outside it (tests as a plain user) `--mode=unshare` makes its own namespace.
import { spawn } from "node:child_process";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { UserError, parsePlatform, type DebianBase } from "@mstage/core";
import { LineSplitter } from "./events.ts";
import { foreignRunProblem, runsNatively } from "../sandbox/binfmt.ts";
import { findTool } from "../sandbox/tools.ts";

export interface DebianRootfs {
  rootfs: string;
  /** Every installed package → its version, from the rootfs's dpkg status. */
  versions: Record<string, string>;
}

export async function buildDebianRootfs(
  base: DebianBase,
  workDir: string,
  o: { sourceDateEpoch: number; signal?: AbortSignal; onLine?: (line: string) => void; onPhase?: (phase: string, progress?: string) => void },
): Promise<DebianRootfs> {
  // Another architecture's packages run their maintainer scripts through emulation; mmdebstrap
  // checks that with arch-test, and says only "install arch-test" when it is missing.
  if (base.platform && !runsNatively(parsePlatform(base.platform))) {
    const problem = foreignRunProblem(parsePlatform(base.platform));
    if (problem) throw new UserError(`debian() for ${base.platform}: ${problem}`);
    if (!findTool("arch-test")) throw new UserError(`debian() for ${base.platform} needs arch-test, which mmdebstrap uses to check the emulator: apt-get install arch-test`);
  }
  const rootfs = join(workDir, "rootfs");
  await mkdir(rootfs, { recursive: true });
  const args = [
    process.getuid?.() === 0 ? "--mode=root" : "--mode=unshare",
    // apt's and dpkg's own lines, which the package counts of the progress line are read from;
    // only warnings and errors of them are shown.
    "--verbose",
    `--variant=${base.variant ?? "minbase"}`,
    // Device nodes cannot be made in a user namespace; the sandbox gives steps a /dev of its own.
    "--skip=output/dev",
    "--skip=output/mknod",
    ...(base.platform ? [`--architectures=${debianArchitecture(base.platform)}`] : []),
    ...(base.packages.length ? [`--include=${[...base.packages].join(",")}`] : []),
    base.suite,
    rootfs,
    ...(base.mirror ? [base.mirror] : []),
  ];
  const tail: string[] = [];
  const errors: string[] = [];
  const progress = new MmdebstrapProgress((phase, count) => o.onPhase?.(phase, count));
  const lines = new LineSplitter((line) => {
    if (isMountNoise(line)) return;
    tail.push(line);
    if (tail.length > 20) tail.shift();
    if (/^E: /.test(line)) errors.push(line.slice(3).trim());
    // mmdebstrap's "I: installing essential packages..." are its phases, and apt's and dpkg's lines
    // their package counts: both go to the stage's progress line rather than scrolled as output.
    if (progress.read(line)) return;
    if (/^[WE]: /.test(line) || !o.onPhase) o.onLine?.(line);
  });
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn("mmdebstrap", args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, SOURCE_DATE_EPOCH: String(o.sourceDateEpoch), LC_ALL: "C.UTF-8" },
      signal: o.signal,
    });
    child.stdout.setEncoding("utf8").on("data", (c: string) => lines.push(c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => lines.push(c));
    child.on("error", (e: NodeJS.ErrnoException) =>
      reject(e.code === "ENOENT" ? new UserError("debian() bases need mmdebstrap: install it with `apt-get install mmdebstrap`") : e),
    );
    child.on("close", (c, sig) => resolve(c ?? (sig ? 128 : 1)));
  });
  lines.flush();
  if (code !== 0) {
    // mmdebstrap's own cause ("Unable to locate package nodejss") leads, also under -q, where no
    // step output was shown; its last lines follow.
    const cause = errors.find((e) => !/^(mmdebstrap failed|run_chroot failed|apt-get .* failed)/.test(e)) ?? errors[0];
    throw new UserError(`debian ${base.suite}: ${cause ?? `mmdebstrap failed with exit code ${code}`}`, {
      detail: `mmdebstrap ${args.join(" ")} exited with ${code}; its last lines:\n${tail.join("\n")}`,
    });
  }
  // mmdebstrap copies the host's resolver config and name; neither belongs in an image (the
  // sandbox binds the host's resolv.conf for steps that use the network).
  for (const f of ["etc/resolv.conf", "etc/hostname"]) await rm(join(rootfs, f), { force: true });
  return { rootfs, versions: parseDpkgStatus(await readFile(join(rootfs, "var/lib/dpkg/status"), "utf8")) };
}

/**
 * mmdebstrap's phases ("I: downloading packages with apt...") and, under --verbose, how far each
 * is: apt's "69 newly installed" gives the count, its "Get:N … pkg" lines the downloads and dpkg's
 * "Setting up pkg" lines the installs. `read` says whether a line was one of these.
 */
export class MmdebstrapProgress {
  private phase = "";
  private total = 0;
  private fetched = 0;
  private setUp = 0;
  private shown = "";

  constructor(private readonly report: (phase: string, progress?: string) => void) {}

  read(line: string): boolean {
    const info = /^I: (.*?)\.*$/.exec(line);
    if (info) {
      this.phase = info[1]!;
      this.fetched = 0;
      this.setUp = 0;
      this.show();
      return true;
    }
    const planned = /^\d+ upgraded, (\d+) newly installed/.exec(line);
    if (planned) {
      this.total = Number(planned[1]);
      this.fetched = 0;
      this.setUp = 0;
    } else if (/^Get:\d+ \S+ \S+ \S+ \S+ \S+ \S+ \S+/.test(line) && this.total > 0) this.fetched++;
    else if (/^Setting up \S+ /.test(line)) this.setUp++;
    else return false;
    this.show();
    return true;
  }

  private show(): void {
    const of = (n: number, what: string) => `${Math.min(n, this.total || n)}/${this.total || n} ${what}`;
    const progress = this.setUp ? of(this.setUp, "packages set up") : this.fetched ? of(this.fetched, "packages fetched") : this.total ? `${this.total} packages` : undefined;
    const key = `${this.phase}\0${progress ?? ""}`;
    if (key === this.shown || !this.phase) return;
    this.shown = key;
    this.report(this.phase, progress);
  }
}

/**
 * Lines mmdebstrap's chroot setup prints when /proc or /sys cannot be mounted in a user namespace:
 * it falls back to bind mounts and goes on, so they say nothing a user can act on.
 */
export function isMountNoise(line: string): boolean {
  return /^mount: .*: permission denied\.?$/.test(line) || /^\s*dmesg\(1\) may have more information after failed mount/.test(line) || /^W: since mounting \/(proc|sys) normally failed/.test(line);
}

/** Installed packages and versions from a dpkg status file. */
export function parseDpkgStatus(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const para of text.split(/\n\n+/)) {
    const field = (name: string) => new RegExp(`^${name}: (.*)$`, "m").exec(para)?.[1]?.trim();
    const pkg = field("Package");
    const version = field("Version");
    const status = field("Status");
    if (pkg && version && status?.endsWith(" installed")) {
      const arch = field("Architecture");
      out[arch && arch !== "all" && pkg in out ? `${pkg}:${arch}` : pkg] = version;
    }
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Debian's name for an OCI platform's architecture (dpkg --print-architecture). */
export function debianArchitecture(platform: string): string {
  const p = parsePlatform(platform);
  const names: Record<string, string> = { "386": "i386", ppc64le: "ppc64el", mips64le: "mips64el", mipsle: "mipsel" };
  if (p.architecture === "arm") return p.variant === "v5" || p.variant === "v6" ? "armel" : "armhf";
  return names[p.architecture] ?? p.architecture;
}
