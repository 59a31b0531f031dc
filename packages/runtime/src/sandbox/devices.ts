// A minimal /dev for the steps of one mounted rootfs (a stage's session): a directory beside the
// rootfs with the device nodes' mountpoints, /dev/pts and /dev/shm, the usual symlinks and
// /dev/.mstage. Making it spawns nothing: the mounts on it (null/zero/full/random/urandom/tty bound
// from the host, a new devpts instance, a /dev/shm tmpfs, the helper read-only) are lines of the
// step's own fstab, made inside the step's private mount namespace by its one `mount --all`, and
// gone with that namespace (no unmount either). Each step therefore gets its own devpts and shm; the
// files a step leaves in /dev are seen by the later steps of the same rootfs only. ldd is asked once
// per mstage process.
// /dev/.mstage carries the host's setpriv with its loader and libraries (bound read-only, file by
// file, over empty mountpoints), which switches to a step's user after pivot_root has made the
// host's filesystem unreachable (see setup-script.ts).
import { execFile } from "node:child_process";
import { mkdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { promisify } from "node:util";
import { UserError } from "@mstage/core";
import { fstabLine } from "./fstab.ts";
import { hostPath, requireTool } from "./tools.ts";

const run = promisify(execFile);

/** Host devices bound into every step's /dev. */
const DEVICES = ["null", "zero", "full", "random", "urandom", "tty"];
const LINKS: Array<[name: string, target: string]> = [
  ["ptmx", "pts/ptmx"],
  ["fd", "/proc/self/fd"],
  ["stdin", "/proc/self/fd/0"],
  ["stdout", "/proc/self/fd/1"],
  ["stderr", "/proc/self/fd/2"],
];

/** Where the helper is seen inside a step, and how to run it there (loader, library path, binary). */
export const HELPER_DIR = "/dev/.mstage";

/** Where pivot_root puts the host's root inside a step, until the step's setup detaches it. */
export const OLD_ROOT = "/dev/.mstage/old";

export interface DevTemplate {
  dir: string;
  /**
   * fstab lines (fstab.ts) that finish `dir` in the step's mount namespace, before `dir` is bound
   * recursively onto the rootfs' /dev.
   */
  mounts: string[];
  /** argv prefix that runs the host's setpriv inside the step's root. */
  setpriv: string[];
  /** argv that runs the host's umount right after pivot_root, through OLD_ROOT. */
  umount: string[];
}

/** A binary's loader and libraries, from ldd (part of every glibc system). */
async function helperFiles(binary: string): Promise<{ files: string[]; loader: string }> {
  const { stdout } = await run("ldd", [binary], { env: { PATH: hostPath() } });
  const files = [binary];
  let loader = "";
  for (const line of stdout.split("\n")) {
    const lib = /=>\s*(\/\S+)/.exec(line)?.[1];
    if (lib) files.push(lib);
    else {
      const ld = /^\s*(\/\S*ld-linux\S*|\/\S*ld\.so\S*)\s/.exec(line)?.[1];
      if (ld) loader = ld;
    }
  }
  if (!loader) throw new Error(`cannot find the dynamic loader of ${binary} in: ${stdout}`);
  files.push(loader);
  return { files, loader };
}

interface Helpers {
  /** Host files bound into /dev/.mstage: the name there, and the file's real path. */
  files: Array<{ name: string; source: string }>;
  setpriv: string[];
  umount: string[];
}

let helpers: Promise<Helpers> | undefined;

/** What goes into /dev/.mstage and how steps run it; ldd is asked once per process. */
function hostHelpers(): Promise<Helpers> {
  helpers ??= (async () => {
    const setpriv = requireTool("setpriv");
    const [helper, umount] = await Promise.all([helperFiles(setpriv), helperFiles(requireTool("umount"))]);
    const inStep = (p: string) => `${HELPER_DIR}/${basename(p)}`;
    // Through the old root, absolute symlinks (/lib64/ld-linux…) would resolve in the step's root.
    const old = (p: string) => OLD_ROOT + realpathSync(p);
    const libDirs = [...new Set(umount.files.slice(1, -1).map((f) => old(dirname(f))))].join(":");
    return {
      files: [...new Map(helper.files.map((f) => [basename(f), realpathSync(f)]))].map(([name, source]) => ({ name, source })),
      setpriv: [inStep(helper.loader), "--library-path", HELPER_DIR, inStep(setpriv)],
      umount: [old(umount.loader), "--library-path", libDirs, old(umount.files[0])],
    };
  })();
  helpers.catch(() => (helpers = undefined));
  return helpers;
}

/**
 * Starts asking ldd for the step helpers now, so that a build's first step does not wait for it:
 * `up` calls this before it plans. A failure is reported by the first step that needs them.
 */
export function prepareStepHelpers(): void {
  hostHelpers().catch(() => undefined);
}

const templates = new Map<string, Promise<DevTemplate>>();

/**
 * The /dev for steps on the rootfs mounted at `merged` (by withRootfs, inside mstage's namespaces),
 * made on its first step beside `merged` and shared by that rootfs' steps only: a step of one stage
 * can never leave anything in another stage's /dev. withRootfs removes it with its own dir, and
 * releaseDevTemplate() forgets it.
 */
export function devTemplate(merged: string): Promise<DevTemplate> {
  let t = templates.get(merged);
  if (!t) {
    t = makeTemplate(join(dirname(merged), "dev"));
    templates.set(merged, t);
    t.catch(() => templates.delete(merged));
  }
  return t;
}

async function makeTemplate(dir: string): Promise<DevTemplate> {
  try {
    const h = await hostHelpers();
    mkdirSync(dir, { mode: 0o755 });
    const at = (name: string) => join(dir, name);
    for (const n of DEVICES) writeFileSync(at(n), "", { mode: 0o644 });
    for (const d of ["pts", "shm", ".mstage", ".mstage/old"]) mkdirSync(at(d), { mode: 0o755 });
    for (const [name, target] of LINKS) symlinkSync(target, at(name));
    for (const f of h.files) writeFileSync(at(`.mstage/${f.name}`), "", { mode: 0o755 });
    const mounts = [
      ...DEVICES.map((n) => fstabLine(`/dev/${n}`, at(n), "none", "bind")),
      fstabLine("devpts", at("pts"), "devpts", "newinstance,ptmxmode=0666,mode=620"),
      // Docker's default shm size (HostConfig.ShmSize, 64 MiB): unbounded, a step filling /dev/shm
      // would fill up to half the host's memory where a container gets ENOSPC.
      fstabLine("shm", at("shm"), "tmpfs", "nosuid,nodev,noexec,mode=1777,size=64m"),
      // Read-only: the next step's setup runs these with all of the namespace's capabilities,
      // before setpriv drops them, so no step may replace a byte of them, nor add a file.
      fstabLine(at(".mstage"), at(".mstage"), "none", "bind,ro"),
      ...h.files.map((f) => fstabLine(f.source, at(`.mstage/${f.name}`), "none", "bind,ro")),
    ];
    return { dir, mounts, setpriv: h.setpriv, umount: h.umount };
  } catch (e) {
    throw new UserError(`could not build the sandbox's /dev: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`, {
      cause: e,
      detail: "run `mstage doctor`",
    });
  }
}

/** Forgets the /dev made for `merged`, if any (withRootfs calls it before unmounting). */
export function releaseDevTemplate(merged: string): void {
  templates.delete(merged);
}
