// stacker's generate_labels through the built CLI, as stacker's own test/labels.bats checks it: a
// file written to /stacker/oci-labels becomes an image label, while nothing else the script writes
// reaches the image; `imports` are under /stacker/imports during run. Editing the script re-runs only it, not the layer; convert's images.ts
// (labelsFrom) builds the same image.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { multiarchUnavailable, writeMultiarchLayout } from "./helpers/multiarch.ts";
import { expectOk, listRootfs, mstageAs, sameImage, skopeoInspect, testUsers, tool, unpack, userDirsFor } from "./up-harness.ts";

const missing = ["skopeo", "umoci"].filter((t) => !tool(t));
const skip = multiarchUnavailable() ?? (missing.length ? `missing ${missing.join(", ")}: run .ci/setup` : undefined);

const STACKER = (value: string) => `label:
  from:
    type: oci
    url: ./base:busybox
  imports:
    - ./data.txt
  run: cp /stacker/imports/data.txt /built
  labels:
    fixed: from-labels
    meshuggah: overridden-by-labels
  generate_labels: |
    echo -n ${value} > /stacker/oci-labels/band
    echo -n nope > /stacker/oci-labels/meshuggah
    echo scratch > /not-in-the-image
`;

test("generate_labels: files in /stacker/oci-labels become labels, nothing else the script writes is in the image; an edit re-runs only the script", { skip, timeout: 3 * 60_000 }, async (t) => {
  const user = testUsers()[0]!.name;
  const [dir, store] = userDirsFor(t, user, "stacker-labels", "stacker-labels-store");
  writeMultiarchLayout(join(dir, "base"));
  writeFileSync(join(dir, "stacker.yaml"), STACKER("rocks"));
  writeFileSync(join(dir, "data.txt"), "imported\n");
  writeFileSync(join(dir, "images.ts"), `import { stacker } from "mstage";\nexport const images = stacker("./stacker.yaml");\n`);
  const mstage = mstageAs(user, dir, store);
  expectOk(await mstage(["up", "--progress", "plain"]), "up");
  const labels = () => (skopeoInspect(join(dir, "oci"), "label", true) as { config: { Labels: Record<string, string> } }).config.Labels;
  assert.deepEqual(labels(), { band: "rocks", fixed: "from-labels", meshuggah: "overridden-by-labels" });
  const bundle = unpack(join(dir, "oci"), "label");
  t.after(() => rmSync(bundle, { recursive: true, force: true }));
  const files = listRootfs(bundle);
  assert.equal(readFileSync(join(bundle, "rootfs/built"), "utf8"), "imported\n", "imports are under /stacker/imports during run");
  assert.ok(!files.includes("not-in-the-image") && !files.includes("stacker"), "the script's own writes are not in the image");

  writeFileSync(join(dir, "stacker.yaml"), STACKER("rolls"));
  const plan = expectOk(await mstage(["plan"]), "plan after editing generate_labels");
  assert.match(plan.stdout, /=\s+label\.content\s+cached/, "the layer itself is not rebuilt");
  expectOk(await mstage(["up", "-q"]), "up after the edit");
  assert.equal(labels().band, "rolls");

  expectOk(await mstage(["convert", "stacker.yaml", "-o", "converted.ts"]), "convert");
  const converted = readFileSync(join(dir, "converted.ts"), "utf8");
  assert.match(converted, /labelsFrom: labelGenerateLabels\.path\("\/stacker\/oci-labels"\)/);
  const [other] = userDirsFor(t, user, "stacker-labels-convert");
  writeMultiarchLayout(join(other, "base"));
  writeFileSync(join(other, "data.txt"), "imported\n");
  writeFileSync(join(other, "images.ts"), converted);
  expectOk(await mstageAs(user, other, store)(["up", "-q"]), "up of the converted images.ts");
  sameImage(join(dir, "oci"), join(other, "oci"), "label");
});
