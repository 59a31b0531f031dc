// dockerfile()'s COPY features that buildah 1.28 lacks, through the built CLI on scratch (no base to
// pull): `COPY --parents` (a /./ pivot, wildcards and `**`, from another stage), checked against
// BuildKit's documented results; and `mstage convert` of the same file building the same image.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { expectOk, listRootfs, mstageAs, sameImage, testUsers, tool, unpack, userDirsFor } from "./up-harness.ts";

const missing = ["skopeo", "umoci"].filter((t) => !tool(t));
const skip = missing.length ? `missing ${missing.join(", ")}: run .ci/setup` : undefined;

const DOCKERFILE = `FROM scratch AS build
COPY --parents lib/./x/libz.so lib/./x/libz.a /opt/
FROM scratch
# Each match keeps its path below the context (or below the /./ pivot).
COPY --parents a/b/f.txt x/./y/g.txt /dst/
COPY --parents */*.go /go/
COPY --parents src/**/*.h /inc
COPY --parents --from=build /opt/./x/libz.so /usr/lib/
COPY --from=build /opt/x/libz.* /flat/
`;

const CONTEXT: Record<string, string> = {
  "a/b/f.txt": "f\n",
  "x/y/g.txt": "g\n",
  "p/main.go": "package main\n",
  "q/util.go": "package q\n",
  "q/util.txt": "not go\n",
  "src/z.h": "z\n",
  "src/deep/er/w.h": "w\n",
  "lib/x/libz.so": "so\n",
  "lib/x/libz.a": "a\n",
};

test("COPY --parents keeps the sources' paths as BuildKit does (pivot, wildcards, **, --from), and convert's images.ts builds the same image", { skip, timeout: 3 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const [dir, store] = userDirsFor(t, user, "df-copy", "df-copy-store");
  for (const [name, text] of Object.entries({ ...CONTEXT, Dockerfile: DOCKERFILE })) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  writeFileSync(join(dir, "images.ts"), `import { dockerfile } from "mstage";\nexport const app = dockerfile("./Dockerfile", { name: "app" });\n`);
  const mstage = mstageAs(user, dir, store);
  expectOk(await mstage(["up", "--progress", "plain"]), "up");
  const bundle = unpack(join(dir, "oci"), "app");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  const files = listRootfs(bundle).filter((p) => !/^(dst|go|inc|usr|flat)$/.test(p));
  assert.deepEqual(files, [
    "dst/a", "dst/a/b", "dst/a/b/f.txt", "dst/y", "dst/y/g.txt",
    "flat/libz.a", "flat/libz.so",
    "go/p", "go/p/main.go", "go/q", "go/q/util.go",
    "inc/src", "inc/src/deep", "inc/src/deep/er", "inc/src/deep/er/w.h", "inc/src/z.h",
    "usr/lib", "usr/lib/x", "usr/lib/x/libz.so",
  ]);
  assert.equal(readFileSync(join(bundle, "rootfs/usr/lib/x/libz.so"), "utf8"), "so\n");

  expectOk(await mstage(["convert", "Dockerfile", "--name", "app", "-o", "converted.ts"]), "convert");
  const other = join(dir, "converted");
  mkdirSync(other);
  writeFileSync(join(other, "images.ts"), readFileSync(join(dir, "converted.ts"), "utf8").replaceAll('local("./', 'local("../'));
  expectOk(await mstageAs(user, other, store)(["up", "--progress", "plain"]), "up of the converted images.ts");
  sameImage(join(dir, "oci"), join(other, "oci"), "app");
});
