// `mstage init`: a starter project that builds as it is. images.ts starts from `debian()` (a
// rootfs made from Debian packages, so it needs a Debian mirror and no image registry), and a
// package.json (mstage as a dev dependency), a tsconfig.json and a .gitignore are written when
// there are none, so an editor resolves `import ... from "mstage"`. Nothing is ever overwritten.
import { existsSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";
import { VERSION } from "../version.ts";

export const STARTER = `// images.ts: the images this project builds, in TypeScript.
//   mstage plan   shows what would be built, and why
//   mstage up     builds what changed and writes OCI images to ./oci
import { stage, debian, inline } from "mstage";

// A Debian root filesystem made from packages (rootless mmdebstrap): no base image, no registry,
// only a Debian mirror. Add packages here; their versions are pinned in images.lock.
const base = debian({ suite: "bookworm", packages: [] });

// Not exported: a build-only stage. It is built only because \`app\` copies from it, and it is
// never written out as an image.
const build = stage("build", {
  from: base,
  copy: { "/src/hello.sh": inline("#!/bin/sh\\necho hello from mstage\\n") },
  run: "mkdir -p /out && install -m 0755 /src/hello.sh /out/hello",
});

// Exported: an output image, named "app" in ./oci (and tagged with \`tags\`, if any).
export const app = stage("app", {
  from: base,
  copy: { "/usr/local/bin/hello": build.path("/out/hello") },
  cmd: ["/usr/local/bin/hello"],
  labels: { "org.opencontainers.image.title": "app" },
});
`;

/** A package.json that makes images.ts an ES module and brings mstage's types to the editor. */
export function starterPackageJson(dir: string): string {
  const name = basename(dir).toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[._-]+/, "") || "images";
  const pkg = { name, private: true, type: "module", devDependencies: { mstage: `^${VERSION}` } };
  return JSON.stringify(pkg, null, 2) + "\n";
}

/** A tsconfig.json under which `tsc --noEmit` checks images.ts against mstage's types. */
export function starterTsconfig(configFile: string): string {
  const config = {
    compilerOptions: {
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      noEmit: true,
      skipLibCheck: true,
    },
    include: [basename(configFile)],
  };
  return JSON.stringify(config, null, 2) + "\n";
}

export const STARTER_GITIGNORE = `# mstage: the last build's inputs (for plan's reasons) and the default output. Commit images.lock.
.mstage/
oci/
node_modules/
`;

export default async function init(_args: string[], _opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const dir = dirname(g.file);
  const files: [path: string, text: () => string][] = [
    [g.file, () => STARTER],
    [join(dir, "package.json"), () => starterPackageJson(dir)],
    [join(dir, "tsconfig.json"), () => starterTsconfig(g.file)],
    [join(dir, ".gitignore"), () => STARTER_GITIGNORE],
  ];
  const shown = (p: string) => relative(process.cwd(), p) || p;
  const written: string[] = [];
  const kept: string[] = [];
  for (const [path, text] of files) {
    if (existsSync(path)) {
      kept.push(shown(path));
      continue;
    }
    // "wx": another process creating the file between the check and the write still wins.
    writeFileSync(path, text(), { flag: "wx" });
    written.push(shown(path));
  }
  if (written.length === 0) {
    throw new UserError(`${shown(g.file)} already exists, and so do ${kept.slice(1).join(", ")}: nothing to write; pass -f OTHER.ts for another config`);
  }
  if (!g.quiet) {
    const lines = [`wrote ${written.join(", ")}`];
    if (kept.length) lines.push(`kept ${kept.join(", ")} (init never overwrites a file)`);
    lines.push(
      "next:",
      "  npm install -D mstage   types for your editor (npx tsc --noEmit checks images.ts)",
      "  mstage plan             what would be built, and why",
      "  mstage up               build it; the images go to ./oci",
    );
    process.stdout.write(lines.join("\n") + "\n");
  }
  return 0;
}
