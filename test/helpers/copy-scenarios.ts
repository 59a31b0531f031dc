// Dockerfiles and their images.ts equivalents, one exported stage per Dockerfile, all on the offline
// base of buildah.ts' makeFeatureBase. copy-buildah.test.ts builds both and compares them entry by
// entry; copy-semantics.test.ts checks mstage's results against what BuildKit documents.
import { execFileSync } from "node:child_process";
import { chmodSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Scenario {
  /** The exported stage's name, also the ref in both layouts. */
  name: string;
  dockerfile: (base: string) => string;
  /** Paths a buildah RUN leaves behind as empty mount points (not in the image's own changes). */
  runArtifacts?: boolean;
}

export const SCENARIOS: Scenario[] = [
  {
    name: "from-stage",
    dockerfile: (base) => `FROM oci:${base}:base AS src
FROM oci:${base}:base
COPY --from=src /opt/src /keep/
COPY --from=src --chown=app:extra /opt/src /chowned/
COPY --from=src /opt/src/tool /single/
COPY --from=src /opt/src /opt/existing/
COPY --from=src /opt/src/sub/plain.txt /into/
COPY --from=src /opt/src/s* /globbed/
COPY --from=src /opt/src/sub/p*.txt /one-glob
`,
  },
  {
    name: "local",
    dockerfile: (base) => `FROM oci:${base}:base
COPY f /newdir/deep/
COPY d /ldir/
COPY --chown=app d /ldir-app/
COPY --chown=1000:extra f /owned-f
COPY d /opt/existing/
COPY --chmod=0600 f /f600
COPY sub/l* /globbed/
COPY sub/lf* /one-glob
ADD a.tar.gz /unpacked/gz/
ADD a.tar.xz /unpacked/xz/
ADD a.tar.bz2 /unpacked/bz2/
ADD a.tar /unpacked/plain/
`,
  },
  {
    name: "workdir-user",
    runArtifacts: true,
    dockerfile: (base) => `FROM oci:${base}:base
WORKDIR /wd/a
USER app
WORKDIR /wd/app/b
RUN id -G > groups-app
USER app:root
WORKDIR /wd2
RUN id -u > /wd2/ids; id -G >> /wd2/ids
CMD ["/bin/sh"]
ENV X=1
EXPOSE 80 53/udp
LABEL org.example.k=v
STOPSIGNAL SIGINT
`,
  },
];

/** images.ts for all scenarios on the base layout `base`. */
export function scenarioImagesTs(base: string): string {
  const b = JSON.stringify(base);
  return `import { archive, inline, local, oci, stage } from "mstage";

const src = stage("src", { from: oci(${b}, "base") });
export const fromStage = stage("from-stage", {
  from: oci(${b}, "base"),
  copy: {
    "/keep/": src.path("/opt/src"),
    "/chowned/": src.path("/opt/src", { owner: "app:extra" }),
    "/single/": src.path("/opt/src/tool"),
    "/opt/existing/": src.path("/opt/src"),
    "/into/": src.path("/opt/src/sub/plain.txt"),
    "/globbed/": src.path("/opt/src/s*"),
    "/one-glob": src.path("/opt/src/sub/p*.txt"),
  },
});

export const localFiles = stage("local", {
  from: oci(${b}, "base"),
  copy: {
    "/newdir/deep/": local("./f"),
    "/ldir/": local("./d"),
    "/ldir-app/": local("./d", { owner: "app" }),
    "/owned-f": local("./f", { owner: "1000:extra" }),
    "/opt/existing/": local("./d"),
    "/f600": local("./f", { mode: 0o600 }),
    "/globbed/": local("./sub/l*"),
    "/one-glob": local("./sub/lf*"),
    "/unpacked/gz/": archive(local("./a.tar.gz")),
    "/unpacked/xz/": archive(local("./a.tar.xz")),
    "/unpacked/bz2/": archive(local("./a.tar.bz2")),
    "/unpacked/plain/": archive(local("./a.tar")),
  },
});

const wdA = stage("wd-a", { from: oci(${b}, "base"), workdir: "/wd/a" });
const wdB = stage("wd-b", { from: wdA, runAs: "app", user: "app", workdir: "/wd/app/b", run: "id -G > groups-app" });
export const workdirUser = stage("workdir-user", {
  from: wdB,
  runAs: "app:root",
  user: "app:root",
  workdir: "/wd2",
  run: "id -u > /wd2/ids; id -G >> /wd2/ids",
  cmd: ["/bin/sh"],
  env: { X: "1" },
  expose: [80, "53/udp"],
  labels: { "org.example.k": "v" },
  stopSignal: "SIGINT",
});

// An image's files bound and copied without a stage written for it (RUN --mount=type=bind,from=image, COPY --from=image).
export const basePaths = stage("base-paths", {
  from: oci(${b}, "base"),
  binds: { "/mnt/etc": oci(${b}, "base").path("/etc") },
  copy: { "/copied/": oci(${b}, "base").path("/etc/group") },
  run: "cp /mnt/etc/passwd /bound-passwd",
});

// Beyond the Dockerfiles: BuildKit semantics buildah does not share, and errors.
export const extras = stage("extras", {
  from: oci(${b}, "base"),
  copy: {
    "/into": local("./f"), // a dangling symlink destination: the file is written where it points
    "/as-file": local("./f"),
    "/etc/motd": inline("hi\\n", { owner: "app:extra", mode: 0o600 }),
    "/inc/": local("./d", { include: ["*.sh", "sub/"] }),
    // BuildKit's anchored include patterns: "x" is no top-level file, so ldir/deep/x stays out.
    "/inc2/": local("./sub", { include: ["ldir/**", "!ldir/deep/x", "lf*", "x"] }),
    "/unpacked/zst/": archive(local("./a.tar.zst")),
  },
});
`;
}

/** The build context both builders copy from: f (0640), d/ with a 0700 subdir, a hardlink, a script and a symlink; sub/ for wildcards. */
export function writeContext(dir: string): void {
  writeFileSync(join(dir, "f"), "f\n");
  chmodSync(join(dir, "f"), 0o640);
  mkdirSync(join(dir, "d/sub"), { recursive: true });
  writeFileSync(join(dir, "d/g"), "g\n");
  linkSync(join(dir, "d/g"), join(dir, "d/sub/g2"));
  writeFileSync(join(dir, "d/run.sh"), "#!/bin/sh\n");
  chmodSync(join(dir, "d/run.sh"), 0o755);
  symlinkSync("g", join(dir, "d/sym"));
  chmodSync(join(dir, "d/sub"), 0o700);
  // For wildcards: sub/l* matches a file and a directory (whose contents are copied), not "other".
  mkdirSync(join(dir, "sub/ldir/deep"), { recursive: true });
  writeFileSync(join(dir, "sub/lfile"), "lfile\n");
  writeFileSync(join(dir, "sub/ldir/deep/x"), "x\n");
  writeFileSync(join(dir, "sub/other"), "other\n");
  // Archives for ADD / archive(): owned by 1000:2000, with a setuid file, a symlink and a hardlink.
  const src = mkdtempSync(join(tmpdir(), "mstage-archive-src-"));
  mkdirSync(join(src, "pkg/bin"), { recursive: true });
  writeFileSync(join(src, "pkg/bin/tool"), "#!/bin/sh\n");
  chmodSync(join(src, "pkg/bin/tool"), 0o4755);
  linkSync(join(src, "pkg/bin/tool"), join(src, "pkg/bin/tool2"));
  symlinkSync("bin/tool", join(src, "pkg/link"));
  const tar = ["--sort=name", "--mtime=@0", "--numeric-owner", "--owner=1000", "--group=2000", "-C", src];
  execFileSync("tar", [...tar, "-cf", join(dir, "a.tar"), "pkg"]);
  for (const [ext, flag] of [["gz", "-z"], ["xz", "-J"], ["bz2", "-j"], ["zst", "--zstd"]]) execFileSync("tar", [...tar, flag!, "-cf", join(dir, `a.tar.${ext}`), "pkg"]);
  rmSync(src, { recursive: true, force: true });
}
