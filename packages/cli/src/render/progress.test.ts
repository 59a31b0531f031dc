import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import kleur from "kleur";
import { UserError } from "@mstage/core";
import { createProgress, formatDuration, formatSize, formatTransfer, resolveProgressMode } from "./progress.ts";

function sink(o: { isTTY?: boolean; columns?: number } = {}): NodeJS.WriteStream & { text: () => string } {
  let out = "";
  const w = new Writable({
    write(chunk, _enc, done) {
      out += String(chunk);
      done();
    },
  }) as unknown as NodeJS.WriteStream & { text: () => string };
  Object.assign(w, { isTTY: o.isTTY ?? false, columns: o.columns ?? 80, text: () => out });
  return w;
}

test("plain progress prefixes every line with its stage name", () => {
  kleur.enabled = false;
  const out = sink();
  const p = createProgress("plain", out);
  p.onEvent({ type: "stage-start", stage: "build", status: "new" });
  p.onEvent({ type: "log", stage: "build", line: "compiling", stream: "stdout" });
  p.onEvent({ type: "stage-cached", stage: "base" });
  p.onEvent({ type: "stage-done", stage: "build", outcome: "built", ms: 1500, layers: 2 });
  p.stop();
  assert.deepEqual(out.text().trim().split("\n"), ["[build] building (new)", "[build] compiling", "[base] cached", "[build] built in 1.5s"]);
});

test("tty progress keeps one live line per running stage under the scrolling log, and clears it at stop", () => {
  kleur.enabled = false;
  const out = sink({ isTTY: true, columns: 40 });
  const p = createProgress("tty", out);
  p.onEvent({ type: "stage-start", stage: "a", status: "new" });
  p.onEvent({ type: "stage-start", stage: "b", status: "rebuild" });
  p.onEvent({ type: "log", stage: "a", line: "x".repeat(100), stream: "stdout" });
  const text = out.text();
  assert.match(text, /\[a\] x+…/, "log lines are cut to the terminal width");
  assert.match(text, /● a starting \d+ms x+…(\x1b\[0m)?\n● b starting \d+ms\n$/, "the live lines come last, the running stage shows its last output");
  p.onEvent({ type: "stage-done", stage: "a", outcome: "built", ms: 10, layers: 1 });
  p.stop();
  assert.match(out.text(), /✓ a built in 10ms/);
  assert.ok(out.text().endsWith("\x1b[1A\x1b[0J"), "stop erases the remaining live line");
});

test("quiet progress prints nothing; auto picks tty only for a terminal", () => {
  const out = sink();
  const p = createProgress("quiet", out);
  p.onEvent({ type: "log", stage: "a", line: "hidden", stream: "stdout" });
  assert.equal(out.text(), "");
  assert.equal(resolveProgressMode("auto", false, sink({ isTTY: false })), "plain");
  assert.equal(resolveProgressMode(undefined, true, sink({ isTTY: true })), "quiet");
  // A user's typo: UserError, printed without a stack, not "internal error".
  assert.throws(() => resolveProgressMode("fancy", false, sink()), (e: unknown) => e instanceof UserError && /auto, tty or plain/.test(e.message));
});

test("durations and sizes read like a person would write them", () => {
  assert.equal(formatDuration(250), "250ms");
  assert.equal(formatDuration(12_340), "12.3s");
  assert.equal(formatDuration(125_000), "2m05s");
  assert.equal(formatSize(553_600), "553.6 kB");
  assert.equal(formatSize(999), "999 B");
});

test("a phase's progress shows on the live line; plain output prints each phase once, not its counts", () => {
  kleur.enabled = false;
  const tty = sink({ isTTY: true, columns: 100 });
  const live = createProgress("tty", tty);
  live.onEvent({ type: "stage-phase", stage: "base", phase: "debian: installing essential packages", progress: "12/69 packages set up" });
  live.stop();
  assert.match(tty.text(), /● base debian: installing essential packages 12\/69 packages set up \d+ms\n/);

  const out = sink();
  const plain = createProgress("plain", out);
  for (const progress of [undefined, "69 packages", "1/69 packages fetched", "2/69 packages fetched"]) {
    plain.onEvent({ type: "stage-phase", stage: "base", phase: "debian: downloading packages with apt", ...(progress ? { progress } : {}) });
  }
  plain.onEvent({ type: "stage-phase", stage: "base", phase: "debian: installing essential packages", progress: "1/69 packages set up" });
  plain.stop();
  assert.deepEqual(out.text().trim().split("\n"), ["[base] debian: downloading packages with apt", "[base] debian: installing essential packages"]);
});

test("a pull shows bytes of the total and the rate on its stage's live line; plain output says it once, at the end", () => {
  kleur.enabled = false;
  assert.equal(formatTransfer(212e6, 480e6, 61e6), "212/480 MB 61 MB/s");
  assert.equal(formatTransfer(5e5, 2.5e6, 8.25e5), "0.5/2.5 MB 825 kB/s");
  const tty = sink({ isTTY: true, columns: 100 });
  const p = createProgress("tty", tty);
  p.onEvent({ type: "stage-start", stage: "app", status: "new" });
  p.onEvent({ type: "transfer", stage: "app", direction: "pull", ref: "debian:bookworm", done: 212e6, total: 480e6, bytesPerSecond: 61e6 });
  assert.match(tty.text(), /● app pull debian:bookworm 212\/480 MB 61 MB\/s/);
  p.onEvent({ type: "transfer", direction: "push", ref: "127.0.0.1:5000/app:1", done: 1e6, total: 4e6, bytesPerSecond: 2e6 });
  assert.match(tty.text(), /● push 127\.0\.0\.1:5000\/app:1 1\.0\/4\.0 MB 2\.0 MB\/s/);
  p.onEvent({ type: "transfer", direction: "push", ref: "127.0.0.1:5000/app:1", done: 4e6, total: 4e6, bytesPerSecond: 2e6 });
  assert.match(tty.text(), /↑ push 127\.0\.0\.1:5000\/app:1 4\.0\/4\.0 MB 2\.0 MB\/s\n/);
  p.stop();

  const plain = sink();
  const q = createProgress("plain", plain);
  q.onEvent({ type: "transfer", stage: "app", direction: "pull", ref: "debian:bookworm", done: 212e6, total: 480e6, bytesPerSecond: 61e6 });
  q.onEvent({ type: "transfer", stage: "app", direction: "pull", ref: "debian:bookworm", done: 480e6, total: 480e6, bytesPerSecond: 60e6 });
  assert.deepEqual(plain.text().trim().split("\n"), ["[app] pull debian:bookworm 480/480 MB 60 MB/s"]);
});

test("layer compression shows bytes and MB/s on the output's live line until every layer is done; plain output says each layer once", () => {
  kleur.enabled = false;
  const started = Date.now() - 2000;
  const layer = (n: number) => `sha256:${String(n).repeat(64)}` as never;
  const tty = sink({ isTTY: true, columns: 100 });
  const p = createProgress("tty", tty);
  p.onEvent({ type: "compress", stage: "app", layer: layer(1), format: "gzip", done: 100e6, total: 400e6, started });
  p.onEvent({ type: "compress", stage: "app", layer: layer(2), format: "gzip", done: 20e6, total: 100e6, started });
  // 120 of 500 MB in about 2 s.
  assert.match(tty.text(), /● app compress gzip 120\/500 MB (59|60|61) MB\/s/);
  p.onEvent({ type: "compress", stage: "app", layer: layer(2), format: "gzip", done: 100e6, total: 100e6, started });
  assert.match(tty.text(), /✓ app compressed layer 222222222222 \(100\.0 MB, gzip\) in 2\.0s, (49|50|51) MB\/s\n/);
  const before = tty.text().length;
  p.onEvent({ type: "compress", stage: "app", layer: layer(1), format: "gzip", done: 400e6, total: 400e6, started });
  assert.doesNotMatch(tty.text().slice(before), /● app compress/, "no live line once every layer is done");
  p.stop();

  const plain = sink();
  const q = createProgress("plain", plain);
  q.onEvent({ type: "compress", stage: "app", layer: layer(3), format: "zstd", done: 1e6, total: 8e6, started });
  q.onEvent({ type: "compress", stage: "app", layer: layer(3), format: "zstd", done: 8e6, total: 8e6, started });
  assert.deepEqual(plain.text().trim().split("\n"), ["[app] compressed layer 333333333333 (8.00 MB, zstd) in 2.0s, 4.0 MB/s"]);
});
