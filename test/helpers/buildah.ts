// The reference for Dockerfile semantics (DESIGN §7): Debian's `buildah bud` (1.28) on an offline
// base that the test makes, with storage of its own in a temp dir, writing an OCI layout. And that
// base: busybox-static plus files that exercise copy semantics (owners, setuid and sticky bits,
// xattrs with a file capability, hardlinks, symlinks), as an OCI layout both builders read.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Why buildah comparisons cannot run here, or undefined. */
export function buildahUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "buildah bud runs as root in these tests";
  for (const t of ["buildah", "umoci", "setfattr", "setcap", "tar"]) {
    if (spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0) return `${t} is missing: run .ci/setup`;
  }
  return undefined;
}

/**
 * Builds `context`'s Dockerfile with buildah into the OCI layout `out` as `ref`. Each call gets
 * fresh storage, so nothing is shared between builds. Throws with buildah's output on failure.
 */
export function buildahBud(context: string, out: string, ref: string): void {
  const storage = mkdtempSync(join(tmpdir(), "mstage-buildah-"));
  try {
    const global = ["--root", join(storage, "root"), "--runroot", join(storage, "run"), "--storage-driver", "vfs"];
    const r = spawnSync("buildah", [...global, "bud", "--isolation", "chroot", "--layers=false", "-q", "-t", `oci:${out}:${ref}`, context], {
      encoding: "utf8",
      env: { ...process.env, BUILDAH_ISOLATION: "chroot", TMPDIR: storage },
      timeout: 120_000,
    });
    if (r.status !== 0) throw new Error(`buildah bud ${context} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  } finally {
    rmSync(storage, { recursive: true, force: true });
  }
}

/**
 * Builds `context`'s Dockerfile in Docker format and returns the image's Docker config (`config`
 * object), which keeps what OCI configs have no field for (Healthcheck, OnBuild).
 */
export function buildahDockerConfig(context: string): Record<string, unknown> {
  const storage = mkdtempSync(join(tmpdir(), "mstage-buildah-"));
  try {
    const global = ["--root", join(storage, "root"), "--runroot", join(storage, "run"), "--storage-driver", "vfs"];
    const env = { ...process.env, BUILDAH_ISOLATION: "chroot", TMPDIR: storage };
    const bud = spawnSync("buildah", [...global, "bud", "--format", "docker", "--isolation", "chroot", "-q", "-t", "localhost/mstage-test", context], { encoding: "utf8", env, timeout: 120_000 });
    if (bud.status !== 0) throw new Error(`buildah bud ${context} exited ${bud.status}\n${bud.stdout}\n${bud.stderr}`);
    const inspect = execFileSync("buildah", [...global, "inspect", "--type", "image", "localhost/mstage-test"], { encoding: "utf8", env });
    return JSON.parse(inspect).Docker.config;
  } finally {
    rmSync(storage, { recursive: true, force: true });
  }
}

/**
 * An OCI layout at `layout` with one image `base`: busybox with applet links, /etc/passwd and
 * /etc/group (app 1000:1000, extra 2000 with app as a member), and /opt/src: files owned by
 * 1000:1000, a setuid file carrying `user.origin` and `security.capability` (cap_net_raw), a
 * hardlink to it, a sticky 1777 directory, a symlink; /opt/existing (1000:2000, 0750); a dangling
 * symlink /into -> /made/here. Config: Env PATH=/bin.
 */
export function makeFeatureBase(layout: string): void {
  const work = mkdtempSync(join(tmpdir(), "mstage-fbase-"));
  try {
    const root = join(work, "root");
    for (const d of ["bin", "etc", "tmp", "opt/src/sub", "opt/src/sticky", "opt/existing"]) mkdirSync(join(root, d), { recursive: true });
    chmodSync(join(root, "tmp"), 0o1777);
    copyFileSync("/bin/busybox", join(root, "bin/busybox"));
    chmodSync(join(root, "bin/busybox"), 0o755);
    for (const a of ["sh", "id", "ls", "cat", "echo", "mkdir", "touch", "chmod", "chown"]) symlinkSync("busybox", join(root, "bin", a));
    writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
    writeFileSync(join(root, "etc/group"), "root:x:0:\napp:x:1000:\nextra:x:2000:app\n");
    const src = join(root, "opt/src");
    writeFileSync(join(src, "tool"), "#!/bin/sh\necho tool\n");
    linkSync(join(src, "tool"), join(src, "sub/tool-link"));
    writeFileSync(join(src, "sub/plain.txt"), "plain\n");
    symlinkSync("../tool", join(src, "sub/rel-link"));
    execFileSync("chown", ["-hR", "1000:1000", src]);
    chmodSync(join(src, "tool"), 0o4755);
    chmodSync(join(src, "sub/plain.txt"), 0o640);
    chmodSync(join(src, "sticky"), 0o1777);
    execFileSync("setfattr", ["-n", "user.origin", "-v", "base", join(src, "tool")]);
    execFileSync("setcap", ["cap_net_raw+ep", join(src, "tool")]);
    chownSync(join(root, "opt/existing"), 1000, 2000);
    chmodSync(join(root, "opt/existing"), 0o750);
    symlinkSync("/made/here", join(root, "into"));
    const tar = join(work, "layer.tar");
    execFileSync("tar", ["--sort=name", "--mtime=@0", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", root, "-cf", tar, "."]);
    execFileSync("umoci", ["init", "--layout", layout]);
    execFileSync("umoci", ["new", "--image", `${layout}:base`]);
    execFileSync("umoci", ["raw", "add-layer", "--image", `${layout}:base`, tar]);
    execFileSync("umoci", ["config", "--image", `${layout}:base`, "--config.env", "PATH=/bin"]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
