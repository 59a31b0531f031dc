// `mstage init`: writes a commented starter images.ts that plans cleanly.
import { writeFileSync, existsSync } from "node:fs";
import { relative } from "node:path";
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";

export const STARTER = `// images.ts: the images this project builds, in TypeScript.
//   mstage plan   shows what would be built, and why
//   mstage up     builds what changed and writes OCI images to ./oci
import { stage, image, inline } from "mstage";

// Not exported: a build-only stage. It is built only because \`app\` copies from it, and it is
// never written out as an image.
const build = stage("build", {
  from: image("docker.io/library/alpine:3.20"),
  copy: { "/src/hello.sh": inline("#!/bin/sh\\necho hello from mstage\\n") },
  run: "mkdir -p /out && install -m 0755 /src/hello.sh /out/hello",
});

// Exported: an output image, named "app" in ./oci (and tagged with \`tags\`, if any).
export const app = stage("app", {
  from: image("docker.io/library/alpine:3.20"),
  copy: { "/usr/local/bin/hello": build.path("/out/hello") },
  cmd: ["/usr/local/bin/hello"],
  labels: { "org.opencontainers.image.title": "app" },
});
`;

export default async function init(_args: string[], _opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const shown = relative(process.cwd(), g.file) || g.file;
  if (existsSync(g.file)) throw new UserError(`${shown} already exists; remove it or pass -f OTHER.ts`);
  writeFileSync(g.file, STARTER);
  if (!g.quiet) {
    process.stdout.write(
      `wrote ${shown}\n` +
        `next: mstage plan   (add .mstage/ and oci/ to .gitignore; commit images.lock)\n` +
        `for editor types: npm install --save-dev mstage\n`,
    );
  }
  return 0;
}
