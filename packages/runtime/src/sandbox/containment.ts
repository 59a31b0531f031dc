// What a step is denied, as runc/containerd deny it to every container by default: the capability
// bounding set that Docker and BuildKit give a RUN, the /proc paths made read-only and the kernel
// interfaces masked. Without CAP_SYS_ADMIN over the mount namespace that mstage set up, a step can
// neither remount nor unmount what mstage mounted; a user namespace that the step makes for itself
// inherits those mounts locked (mount_namespaces(7)), so it cannot undo them either.
import { statSync } from "node:fs";

/**
 * containerd's default set (`oci.defaultUnixCaps`, the same list Docker gives a container): enough for
 * package managers (chown, setuid/setgid to `_apt`, setcap in postinst scripts), nothing that
 * administers the kernel, mounts, traces other processes or loads modules.
 */
export const STEP_CAPABILITIES = [
  "chown", "dac_override", "fsetid", "fowner", "mknod", "net_raw", "setgid", "setuid", "setfcap",
  "setpcap", "net_bind_service", "sys_chroot", "kill", "audit_write",
];

/** setpriv options that confine the step to STEP_CAPABILITIES (no_new_privs stays off: setuid works). */
export function capabilityOptions(): string[] {
  return [`--bounding-set=-all,${STEP_CAPABILITIES.map((c) => "+" + c).join(",")}`, "--inh-caps=-all"];
}

/** runc's `readonlyPaths`, relative to /proc. */
const PROC_READONLY = ["bus", "fs", "irq", "sys", "sysrq-trigger"];
/** runc's `maskedPaths` below /proc and /sys: a file gets /dev/null bound over it, a directory an empty read-only tmpfs. */
const PROC_MASKED = ["acpi", "asound", "kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi"];
const SYS_MASKED = ["firmware", "devices/virtual/powercap"];

export interface Mask {
  /** Path relative to the /proc or /sys mount. */
  path: string;
  kind: "readonly" | "file" | "dir";
}

let procMasks: Mask[] | undefined;
let sysMasks: Mask[] | undefined;

/** The masks that apply on this kernel (only what exists: a bind onto a missing path fails). */
function existing(root: string, readonly: string[], masked: string[]): Mask[] {
  const out: Mask[] = [];
  const kind = (p: string) => {
    try {
      return statSync(`${root}/${p}`).isDirectory() ? "dir" : "file";
    } catch {
      return undefined;
    }
  };
  for (const p of readonly) if (kind(p)) out.push({ path: p, kind: "readonly" });
  for (const p of masked) {
    const k = kind(p);
    if (k) out.push({ path: p, kind: k });
  }
  return out;
}

/** The masks for a step's /proc. A new procfs shows the same kernel entries as mstage's own /proc. */
export function procMasksHere(): Mask[] {
  return (procMasks ??= existing("/proc", PROC_READONLY, PROC_MASKED));
}

/** The masks for the sysfs that a `network: "none"` step gets. */
export function sysMasksHere(): Mask[] {
  return (sysMasks ??= existing("/sys", [], SYS_MASKED));
}
