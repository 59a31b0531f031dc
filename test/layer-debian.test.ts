// A real Debian minbase rootfs survives commit → tar → apply byte for byte: the extracted layer
// commits back to the same diff-id. Inside the user namespace, as root and as mstage-test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkInUserNamespace, userMissing } from "./layer-userns.helper.ts";

const script = new URL("./layer-debian.script.ts", import.meta.url).pathname;

for (const as of ["invoker", "mstage-test"] as const) {
  test(`a Debian minbase commits to a layer that extracts and re-commits to the same diff-id (${as})`, { timeout: 300_000 }, (t) => {
    const why = userMissing(as);
    if (why) return t.skip(why);
    checkInUserNamespace(script, [], as, (r) => {
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as {
        diffId: string;
        recommitted: string;
        entries: number;
        same: boolean;
        firstDifference: string | null;
        setuid: string[];
        hardlinks: number;
        notRoot: string[];
      };
      assert.ok(out.entries > 5000, `a real rootfs (${out.entries} entries)`);
      assert.ok(out.same, `the extracted layer lists like the rootfs (first difference: ${out.firstDifference})`);
      assert.equal(out.recommitted, out.diffId, "extract then commit again gives the same layer");
      assert.ok(out.setuid.includes("usr/bin/su"), "setuid binaries keep their mode");
      assert.ok(out.notRoot.some((l) => l.startsWith("42/") || l.includes("_apt")) || out.notRoot.length > 0, `files of other ids keep their owner: ${out.notRoot.slice(0, 3).join(", ")}`);
    });
  });
}
