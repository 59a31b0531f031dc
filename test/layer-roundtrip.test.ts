// Layers round-trip through commit → tar → apply inside mstage's user namespace, with real overlay
// mounts, as root and as an unprivileged user with a subordinate id range.
import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { runInUserNamespace, userMissing } from "./layer-userns.helper.ts";

const script = new URL("./layer-roundtrip.script.ts", import.meta.url).pathname;

interface Result {
  expected: string[];
  viaMerge: string[];
  viaOverlay: string[];
  layer2Names: string[];
  layer1Verbose: string;
  sameDigestTwice: boolean;
  adoptedLikeExtracted: boolean;
  opaque: string;
  xattrAfterMerge: string;
  whiteoutInExtracted: string[];
  notes: string[];
}

const runs = new Map<string, Result>();

/** One run per user serves both tests (each run costs a few seconds of overlay work). */
function roundTrip(as: "invoker" | "mstage-test"): Result {
  const done = runs.get(as);
  if (done) return done;
  const r = runInUserNamespace(script, [], as);
  try {
    assert.equal(r.status, 0, `round-trip script failed:\n${r.stderr}`);
    const result = JSON.parse(r.stdout) as Result;
    runs.set(as, result);
    return result;
  } finally {
    rmSync(r.tmp, { recursive: true, force: true });
  }
}

for (const as of ["invoker", "mstage-test"] as const) {
  test(`files created, modified, chowned to 1000 and deleted across two layers round-trip identically (${as})`, (t) => {
    const why = userMissing(as);
    if (why) return t.skip(why);
    const r = roundTrip(as);
    assert.ok(r.expected.some((l) => l.startsWith("chowned file") && l.endsWith("1000:1000 5")), "the chown happened in the overlay");
    assert.deepEqual(r.viaMerge, r.expected, "layers flattened onto the base (merge mode) equal the overlay view they came from");
    assert.deepEqual(r.viaOverlay, r.expected, "extracted layers used as overlay lower dirs equal the overlay view they came from");
    assert.equal(r.xattrAfterMerge, "kept", "a user.* xattr survives commit and apply");
    assert.ok(r.sameDigestTwice, "committing the same upper dir twice gives the same diff-id");
    assert.ok(r.adoptedLikeExtracted, "an upper dir adopted as the layer's lower dir looks exactly like the layer extracted from its tar");
  });

  test(`a directory deleted and re-created in a later layer becomes opaque; deletions become whiteouts (${as})`, (t) => {
    const why = userMissing(as);
    if (why) return t.skip(why);
    const r = roundTrip(as);
    assert.deepEqual(r.layer2Names, [".wh.deleted", "bin/", "bin/.wh.sh", "chowned", "modified", "recreated/", "recreated/.wh..wh..opq", "recreated/new"]);
    assert.equal(r.opaque, "y", "the extracted layer marks the directory opaque for overlayfs");
    assert.deepEqual(r.whiteoutInExtracted.map((l) => l.split(" ")[0]), ["bin/sh", "deleted"]);
    assert.match(r.layer1Verbose, /^-rwsr-xr-x 0\/0 +4 1970-01-01 00:00 created$/m, "setuid mode kept, mtime clamped to SOURCE_DATE_EPOCH 0");
    assert.match(r.layer1Verbose, /^hrwsr-xr-x .* hardlink link to created$/m, "a hardlink within the layer stays a tar hardlink");
    assert.match(r.layer1Verbose, /^drwxr-x--- 1000\/1000 .* srv\/data\/$/m, "directory owner and mode kept");
  });
}

