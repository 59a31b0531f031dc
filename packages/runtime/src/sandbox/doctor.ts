// The checks behind `mstage doctor`: can this machine run rootless builds, and if not, what fixes it.
// Each check probes the real mechanism (the same namespace, mount and tools the builder uses).
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { userInfo } from "node:os";
import { promisify } from "node:util";
import { capabilityOptions } from "./containment.ts";
import { addRangeCommand, planIdMapping } from "./subid.ts";
import { formatPlatform, listerChoice } from "@mstage/core";
import { EMULATED_PLATFORMS, QEMU_INSTALL, binfmtHandler, foreignRunProblem } from "./binfmt.ts";
import { findTool } from "./tools.ts";
import { probeUserNamespace } from "./userns.ts";

const run = promisify(execFile);

export interface DoctorCheck {
  name: string;
  ok: boolean;
  /** A failed required check means builds cannot work; a failed optional one limits them. */
  required: boolean;
  /** What was found, or what went wrong. */
  detail: string;
  /** The command (or action) that fixes a failure. */
  fix?: string;
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

async function toolsCheck(): Promise<DoctorCheck> {
  const name = "util-linux tools (unshare, setpriv, mount)";
  const missing = ["unshare", "setpriv", "mount", "umount", "env"].filter((t) => !findTool(t));
  if (missing.length) return { name, ok: false, required: true, detail: `missing: ${missing.join(", ")}`, fix: "sudo apt-get install util-linux mount coreutils" };
  let help = "";
  try {
    help = (await run(findTool("unshare")!, ["--help"])).stdout;
  } catch (e) {
    help = (e as { stdout?: string }).stdout ?? "";
  }
  const want = ["--kill-child", "--mount-proc", "--root", "--wd", "--setuid", "--setgid"].filter((o) => !help.includes(o));
  if (want.length) return { name, ok: false, required: true, detail: `this unshare lacks ${want.join(", ")} (util-linux 2.36 or later needed)`, fix: "upgrade util-linux to 2.36 or later" };
  const version = /util-linux ([\d.]+)/.exec((await run(findTool("unshare")!, ["--version"])).stdout)?.[1];
  return { name, ok: true, required: true, detail: `util-linux ${version ?? "(unknown version)"}` };
}

function userNamespaceCheck(): DoctorCheck {
  const name = "unprivileged user namespaces";
  const max = readSysctl("/proc/sys/user/max_user_namespaces");
  if (max === "0") return { name, ok: false, required: true, detail: "user.max_user_namespaces is 0", fix: "sudo sysctl -w user.max_user_namespaces=28633" };
  if (process.getuid!() !== 0) {
    if (readSysctl("/proc/sys/kernel/unprivileged_userns_clone") === "0") {
      return { name, ok: false, required: true, detail: "kernel.unprivileged_userns_clone is 0", fix: "sudo sysctl -w kernel.unprivileged_userns_clone=1" };
    }
    if (readSysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") === "1") {
      return { name, ok: false, required: true, detail: "AppArmor restricts unprivileged user namespaces", fix: "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" };
    }
  }
  return { name, ok: true, required: true, detail: `enabled (max ${max ?? "unknown"})` };
}

function uidmapCheck(): DoctorCheck {
  const name = "newuidmap / newgidmap";
  if (process.getuid!() === 0) return { name, ok: true, required: false, detail: "not needed as root (root writes the id maps itself)" };
  const bad: string[] = [];
  for (const t of ["newuidmap", "newgidmap"]) {
    const p = findTool(t);
    if (!p) bad.push(`${t} is not installed`);
    else {
      const st = statSync(p);
      if (!(st.uid === 0 && st.mode & 0o4000)) bad.push(`${p} is not setuid root`);
    }
  }
  if (bad.length) return { name, ok: false, required: true, detail: bad.join("; "), fix: "sudo apt-get install --reinstall uidmap" };
  return { name, ok: true, required: true, detail: "installed, setuid root" };
}

function rangeCheck(): DoctorCheck {
  const name = "subordinate id range";
  const m = planIdMapping();
  const user = userInfo().username;
  if (m.kind === "subid") {
    const [, start, count] = m.uid[1];
    return { name, ok: true, required: false, detail: `${user}: ids 1–${count} map to ${start}–${start + count - 1}` };
  }
  if (m.kind === "identity") return { name, ok: true, required: false, detail: "root without a range: ids 0–65535 map to themselves" };
  return { name, ok: false, required: false, detail: `${user} has none: only images whose files all belong to root can be built`, fix: addRangeCommand(user) };
}

// One probe inside a namespace made as reexecInUserNamespace makes it. Each section prints
// "name|ok|detail" or "name|fail|detail".
// Arguments: the probe dir, then the setpriv options that confine a step (containment.ts).
const PROBE = String.raw`d=$1; shift
report() { printf '%s|%s|%s\n' "$1" "$2" "$(printf %s "$3" | tr '\n|' '  ' | cut -c1-300)"; }
report mapping ok "uid map (inside outside count): $(tr -s ' ' < /proc/self/uid_map | tr '\n' ';')"
if out=$( (mkdir -p "$d/l/gone" "$d/u" "$d/w" "$d/m" && : >"$d/l/gone/f" &&
  mount -t overlay overlay -o "userxattr,lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" &&
  rm -rf "$d/m/gone" && test -c "$d/u/gone" && umount "$d/m") 2>&1); then
  report overlay ok "mounted with userxattr; a deleted lower dir became a whiteout"
else report overlay fail "$out"; fi
rm -rf "$d"
if out=$(unshare --pid --fork --kill-child --mount --mount-proc --ipc --uts sh -c 'test $$ = 1' 2>&1); then
  report pidns ok "new pid, mount, ipc and uts namespaces with their own /proc"
else report pidns fail "$out"; fi
if out=$(unshare --net sh -c 'ip link set lo up && ip -o link show lo' 2>&1); then
  report netns ok "loopback-only network namespace (no /dev/net/tun or slirp needed)"
else report netns fail "$out"; fi
t=$(mktemp -d /tmp/mstage-doctor.XXXXXX)
if out=$(unshare --mount --propagation private sh -c 't=$1; shift
  mkdir "$t/src" "$t/dst" && echo "$t/src $t/dst none bind,ro 0 0" >"$t/fstab" && mount -n --all --fstab "$t/fstab" &&
  setpriv "$@" -- sh -c "grep -q "^CapEff:.*[^0]" /proc/self/status" && ! setpriv "$@" -- mount -o remount,rw,bind "$t/dst" 2>/dev/null' sh "$t" "$@" 2>&1); then
  report containment ok "binds read-only with mount --all; setpriv keeps a step from remounting them"
else report containment fail "\${out:-a step could remount a read-only bind}"; fi
rm -rf "$t"
`;

async function probeChecks(storeDir: string): Promise<DoctorCheck[]> {
  const names: Record<string, string> = {
    mapping: "user namespace with the id mapping",
    overlay: `overlayfs with userxattr (in ${storeDir})`,
    pidns: "pid/mount/ipc/uts namespaces",
    netns: 'network: "none"',
    containment: "step containment (capability bounding set, read-only binds)",
  };
  const fixes: Record<string, string> = {
    mapping: "check /etc/subuid and /etc/subgid (`mstage doctor` above) and that newuidmap/newgidmap are setuid root",
    overlay: "needs Linux 5.11 or later and a store on a local filesystem (ext4, xfs, btrfs): upgrade the kernel or pass --store DIR",
    pidns: "needs a kernel with pid namespaces (CONFIG_PID_NS); containers that forbid nested namespaces cannot build",
    netns: findTool("ip") ? "needs network namespaces (CONFIG_NET_NS)" : "sudo apt-get install iproute2",
    containment: "needs util-linux 2.36 or later (setpriv --bounding-set, mount --all --fstab)",
  };
  let probeDir: string;
  try {
    mkdirParents(storeDir);
    probeDir = `${storeDir}/.doctor-${process.pid}`;
  } catch (e) {
    return [{ name: "store directory", ok: false, required: true, detail: `cannot create ${storeDir}: ${(e as Error).message}`, fix: "pass --store DIR (or set MSTAGE_STORE) to a directory you can write" }];
  }
  let r;
  try {
    r = await probeUserNamespace(PROBE, [probeDir, ...capabilityOptions()]);
  } catch (e) {
    return [{ name: names.mapping, ok: false, required: true, detail: (e as Error).message, fix: fixes.mapping }];
  }
  const checks: DoctorCheck[] = [];
  for (const line of r.stdout.split("\n")) {
    const [key, status, detail] = line.split("|");
    if (!names[key]) continue;
    checks.push({ name: names[key], ok: status === "ok", required: true, detail: detail.trim().replace(/;$/, "").replace(/ *; */g, "; "), fix: status === "ok" ? undefined : fixes[key] });
  }
  for (const key of Object.keys(names)) {
    if (!checks.some((c) => c.name === names[key])) {
      checks.push({ name: names[key], ok: false, required: true, detail: `the probe did not get this far (exit ${r.code}): ${r.stderr.trim().slice(0, 300)}`, fix: fixes[key] });
    }
  }
  return checks;
}

/** mkdir -p, one level at a time (node's recursive mkdir never returns for a path under /proc). */
function mkdirParents(dir: string): void {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) mkdirSync(d);
}

function mmdebstrapCheck(): DoctorCheck {
  const p = findTool("mmdebstrap");
  return p
    ? { name: "mmdebstrap (for debian() bases)", ok: true, required: false, detail: p }
    : { name: "mmdebstrap (for debian() bases)", ok: false, required: false, detail: "not installed: debian() bases cannot be built", fix: "sudo apt-get install mmdebstrap" };
}

/** Emulation of other architectures, for `run` in stages built for them (platform/platforms). */
function binfmtCheck(): DoctorCheck {
  const name = "emulation of other platforms (binfmt_misc, for run in foreign-platform stages)";
  const results = EMULATED_PLATFORMS.map((p) => ({ p: formatPlatform(p), problem: foreignRunProblem(p), handler: binfmtHandler(p) }));
  const bad = results.filter((r) => r.problem);
  if (!bad.length) return { name, ok: true, required: false, detail: results.map((r) => `${r.p} via ${r.handler?.interpreter}`).join(", ") };
  const unmounted = bad.some((r) => r.problem!.includes("not mounted"));
  return {
    name,
    ok: false,
    required: false,
    detail: `cannot run ${bad.map((r) => r.p).join(", ")}: ${unmounted ? "binfmt_misc is not mounted" : "no binfmt_misc handler with the F flag"}`,
    fix: unmounted ? `sudo mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && ${QEMU_INSTALL}` : QEMU_INSTALL,
  };
}

/** Whether plans list large local sources with the native lister the build compiled (optional: Node's fs gives the same listing, slower). */
function listerCheck(): DoctorCheck {
  const name = "native directory lister";
  const c = listerChoice();
  if (c.native) return { name, ok: true, required: false, detail: `loaded ${c.native}` };
  const detail = `${c.why}; plans and layer commits list directories with Node's fs (and getfattr) instead (same results, slower for large trees)`;
  if (c.problem) return { name, ok: false, required: false, detail, fix: "reinstall mstage, or rebuild it (pnpm build) with gcc and libc6-dev installed; MSTAGE_LISTDIR=js uses Node's fs without this warning" };
  return { name, ok: true, required: false, detail };
}

/** Runs every check; `storeDir` is where the overlay probe runs (the store's filesystem matters). */
export async function runDoctorChecks(opts: { storeDir: string }): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [await toolsCheck(), userNamespaceCheck(), uidmapCheck(), rangeCheck()];
  if (checks.slice(0, 3).every((c) => c.ok)) checks.push(...(await probeChecks(opts.storeDir)));
  checks.push(mmdebstrapCheck(), binfmtCheck(), listerCheck());
  return checks;
}
