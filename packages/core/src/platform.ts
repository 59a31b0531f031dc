// Platforms ("linux/arm64/v8") and choosing one image out of a manifest list or OCI index: the one
// place that decides which platform a build is for and which index entry serves it.
import { UserError } from "./errors.ts";

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Parses `os/arch[/variant]`, e.g. `linux/amd64`, `linux/arm/v7`. */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().toLowerCase().split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
    throw new UserError(`invalid platform ${JSON.stringify(s)}: write os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm/v7`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalisePlatform({ os, architecture, ...(variant ? { variant } : {}) });
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** The one spelling of a platform that keys, names and images.lock use ("linux/aarch64" → "linux/arm64"). */
export function canonicalPlatform(s: string): string {
  return formatPlatform(parsePlatform(s));
}

/** The platform this process runs on, in OCI spelling. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: "amd64", ia32: "386", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64", loong64: "loong64" };
  const architecture = arch[process.arch] ?? process.arch;
  let variant: string | undefined;
  if (architecture === "arm") {
    const v = (process.config.variables as Record<string, unknown>)["arm_version"];
    variant = `v${typeof v === "string" || typeof v === "number" ? v : 7}`;
  }
  return normalisePlatform({ os: process.platform, architecture, ...(variant ? { variant } : {}) });
}

// The usual aliases (containerd's platforms.Normalize), so "linux/aarch64" finds "linux/arm64".
function normalisePlatform(p: Platform): Platform {
  let { architecture, variant } = p;
  if (architecture === "x86_64" || architecture === "x86-64") architecture = "amd64";
  if (architecture === "aarch64") architecture = "arm64";
  if (architecture === "armhf") { architecture = "arm"; variant ??= "v7"; }
  if (architecture === "armel") { architecture = "arm"; variant ??= "v6"; }
  if (architecture === "arm64" && variant === "v8") variant = undefined;
  return { os: p.os, architecture, ...(variant ? { variant } : {}) };
}

/** Whether an index entry's platform satisfies the wanted one (no variant wanted = any variant). */
export function platformMatches(want: Platform, have: Platform): boolean {
  const h = normalisePlatform(have);
  if (h.os !== want.os || h.architecture !== want.architecture) return false;
  return want.variant === undefined || want.variant === h.variant;
}

/** Picks the entry for `want` out of an index's manifests; the error lists what there is. */
export function selectPlatform<T extends { platform?: Platform }>(entries: T[], want: Platform, what: string): T {
  const candidates = entries.filter((e) => e.platform && platformMatches(want, e.platform));
  // Prefer an exact variant match, then the first listed (registries list the default first).
  const exact = candidates.find((e) => (normalisePlatform(e.platform!).variant ?? "") === (want.variant ?? ""));
  const found = exact ?? candidates[0];
  if (found) return found;
  const available = entries
    .map((e) => e.platform)
    .filter((p): p is Platform => !!p && p.os !== "unknown")
    .map(formatPlatform);
  throw new UserError(
    `${what} has no image for platform ${formatPlatform(want)}; available: ${available.length ? available.join(", ") : "none"} (choose one with the platform option)`,
  );
}
