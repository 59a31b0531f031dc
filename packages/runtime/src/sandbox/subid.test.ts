import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { addRangeCommand, findSubidRange, planIdMapping } from "./subid.ts";

/** An /etc/subuid and an /etc/subgid with these texts, in a temp dir. */
function subidFiles(subuid: string, subgid: string): { subuid: string; subgid: string } {
  const dir = mkdtempSync(join(tmpdir(), "subid-"));
  writeFileSync(join(dir, "subuid"), subuid);
  writeFileSync(join(dir, "subgid"), subgid);
  return { subuid: join(dir, "subuid"), subgid: join(dir, "subgid") };
}

test("findSubidRange matches the user's name or uid, never another user's line (util-linux 2.38 does, for root)", () => {
  const text = "# ranges\nmstage-test:200000:65536\nroot:100000:65536\n1001:300000:1000\n";
  assert.deepEqual(findSubidRange(text, "root", 0), { start: 100000, count: 65536 });
  assert.deepEqual(findSubidRange(text, "mstage-test", 1001), { start: 200000, count: 65536 });
  assert.deepEqual(findSubidRange(text, "someone", 1001), { start: 300000, count: 1000 });
  assert.equal(findSubidRange(text, "nobody", 65534), undefined);
});

test("without a subordinate range an unprivileged user maps only itself and is told the usermod command", () => {
  const m = planIdMapping(subidFiles("other:100000:65536\n", "other:100000:65536\n"), { uid: 1234, gid: 1234, user: "alice" });
  assert.equal(m.kind, "single");
  assert.deepEqual(m.uid, [[0, 1234, 1]]);
  // The suggested range starts after every range handed out (other's ends at 165536): no overlap.
  assert.match(m.note!, /no subordinate id range .* Add a range with: sudo usermod --add-subuids 196608-262143 --add-subgids 196608-262143 alice$/);
});

test("the suggested range overlaps none in /etc/subuid", () => {
  assert.equal(addRangeCommand("bob", ""), "sudo usermod --add-subuids 131072-196607 --add-subgids 131072-196607 bob");
  assert.equal(addRangeCommand("bob", "root:100000:65536\nmstage-test:200000:65536\n"), "sudo usermod --add-subuids 327680-393215 --add-subgids 327680-393215 bob");
});

test("root without a subordinate range maps ids 0-65535 onto themselves", () => {
  const m = planIdMapping(subidFiles("", ""), { uid: 0, gid: 0, user: "root" });
  assert.equal(m.kind, "identity");
  assert.deepEqual(m.uid, [[0, 0, 65536]]);
  assert.equal(m.note, undefined);
});

test("with a range the invoker is 0 and the range is 1…count", () => {
  const me = userInfo().username;
  const m = planIdMapping(subidFiles(`${me}:300000:65536\n`, `${me}:400000:65536\n`));
  assert.equal(m.kind, "subid");
  assert.deepEqual(m.uid, [[0, process.getuid!(), 1], [1, 300000, 65536]]);
  assert.deepEqual(m.gid, [[0, process.getgid!(), 1], [1, 400000, 65536]]);
});
