// An offline two-platform base for the platform tests: an OCI image layout whose ref "busybox" is an
// image index of a linux/amd64 and a linux/arm64 image, each holding Debian's busybox-static for its
// architecture. The arm64 binary cannot be installed beside the amd64 one, so .ci/setup extracts its
// .deb (apt-get download busybox-static:arm64 && dpkg-deb -x) into ARM64_BUSYBOX_ROOT.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export const ARM64_BUSYBOX_ROOT = "/opt/mstage-test/busybox-static-arm64";
const BUSYBOX = { amd64: "/bin/busybox", arm64: join(ARM64_BUSYBOX_ROOT, "bin/busybox") } as const;

/** Why the two-platform base cannot be made here; undefined when it can. */
export function multiarchUnavailable(): string | undefined {
  if (!existsSync(BUSYBOX.amd64)) return "busybox-static is not installed: run .ci/setup";
  if (!existsSync(BUSYBOX.arm64)) return `${BUSYBOX.arm64} is missing: run .ci/setup (it extracts busybox-static:arm64 there)`;
  return undefined;
}

/** Whether this machine runs arm64 binaries through a binfmt_misc handler (qemu-user-static). */
export function arm64Emulation(): string | undefined {
  try {
    const text = readFileSync("/proc/sys/fs/binfmt_misc/qemu-aarch64", "utf8");
    if (!/^enabled$/m.test(text)) return "the qemu-aarch64 binfmt_misc handler is disabled";
    if (!/^flags: .*F/m.test(text)) return "the qemu-aarch64 binfmt_misc handler lacks the F flag";
    return undefined;
  } catch {
    return "no qemu-aarch64 binfmt_misc handler: run .ci/setup (qemu-user-static, binfmt-support)";
  }
}

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** A ustar header + body for one entry (enough for a regular file, a directory or a symlink). */
function tarEntry(name: string, o: { type: "0" | "2" | "5"; mode: number; body?: Buffer; link?: string }): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, off: number, len: number) => h.write(s, off, len, "utf8");
  const oct = (n: number, len: number) => n.toString(8).padStart(len - 1, "0") + "\0";
  put(name, 0, 100);
  put(oct(o.mode, 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(o.body?.length ?? 0, 12), 124, 12);
  put(oct(0, 12), 136, 12);
  put("        ", 148, 8);
  put(o.type, 156, 1);
  if (o.link) put(o.link, 157, 100);
  put("ustar\u000000", 257, 8);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8);
  const body = o.body ?? Buffer.alloc(0);
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([h, body, pad]);
}

/** Writes the layout at `dir` (made if missing) and returns the index's digest. */
export function writeMultiarchLayout(dir: string): string {
  const blobs = join(dir, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer) => {
    const d = sha256(b);
    writeFileSync(join(blobs, d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const manifests = (["amd64", "arm64"] as const).map((arch) => {
    const tar = Buffer.concat([
      tarEntry("bin/", { type: "5", mode: 0o755 }),
      tarEntry("bin/busybox", { type: "0", mode: 0o755, body: readFileSync(BUSYBOX[arch]) }),
      tarEntry("bin/sh", { type: "2", mode: 0o777, link: "busybox" }),
      tarEntry("bin/uname", { type: "2", mode: 0o777, link: "busybox" }),
      tarEntry("bin/cat", { type: "2", mode: 0o777, link: "busybox" }),
      tarEntry("etc/", { type: "5", mode: 0o755 }),
      tarEntry("etc/passwd", { type: "0", mode: 0o644, body: Buffer.from("root:x:0:0:root:/root:/bin/sh\n") }),
      Buffer.alloc(1024),
    ]);
    const layer = put(gzipSync(tar));
    const config = put(
      Buffer.from(
        JSON.stringify({
          architecture: arch,
          os: "linux",
          config: { Env: ["PATH=/bin"] },
          rootfs: { type: "layers", diff_ids: [sha256(tar)] },
          history: [{ created_by: `busybox-static ${arch}` }],
        }),
      ),
    );
    const manifest = put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
          layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
        }),
      ),
    );
    return { mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, platform: { architecture: arch, os: "linux" } };
  });
  const index = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests })));
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{ mediaType: "application/vnd.oci.image.index.v1+json", ...index, annotations: { "org.opencontainers.image.ref.name": "busybox" } }],
    }),
  );
  return index.digest;
}
