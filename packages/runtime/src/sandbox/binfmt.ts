// Running another architecture's binaries: natively when the CPU can, otherwise through the
// kernel's binfmt_misc handlers (qemu-user-static registers one per architecture). A handler must
// have the F ("fix binary") flag: the kernel then opens the interpreter when it is registered, so it
// works inside the sandbox's pivoted root, where the host's /usr/libexec/qemu-binfmt is not visible.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { formatPlatform, hostPlatform, type Platform } from "@mstage/core";

const BINFMT = "/proc/sys/fs/binfmt_misc";
export const QEMU_INSTALL = "sudo apt-get install qemu-user-static binfmt-support";

/** ELF class (1: 32-bit, 2: 64-bit), byte order and e_machine of each architecture's executables. */
const ELF: Record<string, { bits: 1 | 2; big?: true; machine: number }> = {
  amd64: { bits: 2, machine: 62 },
  "386": { bits: 1, machine: 3 },
  arm64: { bits: 2, machine: 183 },
  arm: { bits: 1, machine: 40 },
  ppc64le: { bits: 2, machine: 21 },
  s390x: { bits: 2, big: true, machine: 22 },
  riscv64: { bits: 2, machine: 243 },
  mips64le: { bits: 2, machine: 8 },
  loong64: { bits: 2, machine: 258 },
};

export interface BinfmtHandler {
  name: string;
  interpreter: string;
  flags: string;
}

/** Whether this machine's CPU runs `p`'s binaries itself (an amd64 kernel also runs 386). */
export function runsNatively(p: Platform): boolean {
  const host = hostPlatform();
  if (p.os !== host.os) return false;
  return p.architecture === host.architecture || (host.architecture === "amd64" && p.architecture === "386");
}

/**
 * The enabled binfmt_misc handler that would run an executable of `p`, found by matching each
 * handler's magic and mask against an ELF header of that architecture, as the kernel does.
 * `undefined`: none (or binfmt_misc is not mounted, or mstage does not know the architecture).
 */
export function binfmtHandler(p: Platform): BinfmtHandler | undefined {
  const elf = ELF[p.architecture];
  if (!elf) return undefined;
  const header = Buffer.alloc(20);
  header.set([0x7f, 0x45, 0x4c, 0x46, elf.bits, elf.big ? 2 : 1, 1], 0);
  if (elf.big) {
    header.writeUInt16BE(2, 16); // ET_EXEC
    header.writeUInt16BE(elf.machine, 18);
  } else {
    header.writeUInt16LE(2, 16);
    header.writeUInt16LE(elf.machine, 18);
  }
  let names: string[];
  try {
    names = readdirSync(BINFMT).filter((n) => n !== "register" && n !== "status");
  } catch {
    return undefined;
  }
  for (const name of names) {
    let text: string;
    try {
      text = readFileSync(join(BINFMT, name), "utf8");
    } catch {
      continue;
    }
    const field = (k: string) => new RegExp(`^${k}:? (.*)$`, "m").exec(text)?.[1]?.trim();
    if (!/^enabled$/m.test(text)) continue;
    const magic = field("magic");
    if (!magic) continue; // an extension handler (jar, python), not a magic one
    const offset = Number(field("offset") ?? 0);
    const m = Buffer.from(magic, "hex");
    const mask = Buffer.from(field("mask") ?? "ff".repeat(m.length), "hex");
    let hit = offset + m.length <= header.length;
    for (let i = 0; hit && i < m.length; i++) hit = (header[offset + i]! & (mask[i] ?? 0xff)) === (m[i]! & (mask[i] ?? 0xff));
    if (hit) return { name, interpreter: field("interpreter") ?? "", flags: field("flags") ?? "" };
  }
  return undefined;
}

/**
 * Why `run` cannot execute binaries of `p` here, with what fixes it; undefined when it can
 * (natively, or through a handler with the F flag).
 */
export function foreignRunProblem(p: Platform): string | undefined {
  if (runsNatively(p)) return undefined;
  const what = `this ${formatPlatform(hostPlatform())} machine cannot run ${formatPlatform(p)} binaries natively`;
  const handler = binfmtHandler(p);
  if (!handler) {
    let mounted = true;
    try {
      readFileSync(join(BINFMT, "status"));
    } catch {
      mounted = false;
    }
    if (!mounted) return `${what}, and binfmt_misc is not mounted: as root, \`mount -t binfmt_misc binfmt_misc ${BINFMT}\` and \`${QEMU_INSTALL}\``;
    return `${what}, and no binfmt_misc handler is registered for it: install emulators with \`${QEMU_INSTALL}\`, or build this stage on a ${formatPlatform(p)} machine (\`mstage doctor\` checks this)`;
  }
  if (!handler.flags.includes("F")) {
    return `${what}, and its binfmt_misc handler ${handler.name} lacks the F flag, so it cannot work inside the build sandbox: re-register it with flags F (Debian's qemu-user-static does)`;
  }
  return undefined;
}

/** The architectures `mstage doctor` reports on: the usual targets besides the host's own. */
export const EMULATED_PLATFORMS: Platform[] = [
  { os: "linux", architecture: "amd64" },
  { os: "linux", architecture: "arm64" },
  { os: "linux", architecture: "arm", variant: "v7" },
].filter((p) => !runsNatively(p));
