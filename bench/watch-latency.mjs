// Drives `mstage up --watch --json` on a project: saves greeting.txt ROUNDS times and reads, from
// the event stream, when the rebuild started and when the new output was written.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const [dir, roundsArg, noopArg, ...mstage] = process.argv.slice(2);
const rounds = Number(roundsArg);
const noopMs = Number(noopArg);
const child = spawn(mstage[0], [...mstage.slice(1), "up", "--watch", "--json"], { cwd: dir, stdio: ["ignore", "pipe", "inherit"] });
const events = [];
let wake = () => {};
let buf = "";
child.stdout.on("data", (b) => {
  buf += b;
  let i;
  while ((i = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    if (line) events.push({ ...JSON.parse(line), seen: Date.now() });
  }
  wake();
});
const next = async (pred, from) => {
  for (;;) {
    const e = events.slice(from).find(pred);
    if (e) return e;
    await new Promise((r) => { wake = r; setTimeout(r, 1000); });
  }
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

await next((e) => e.type === "result", 0);
await new Promise((r) => setTimeout(r, 500));
const start = [], output = [], step = [];
for (let i = 0; i < rounds; i++) {
  const from = events.length;
  const saved = Date.now();
  writeFileSync(join(dir, "greeting.txt"), `hello ${i} ${saved}\n`);
  const begun = await next((e) => e.type === "stage-start" && e.stage === "greet", from);
  const run = await next((e) => e.type === "stage-phase" && e.stage === "greet" && e.phase === "run", from);
  const commit = await next((e) => e.type === "stage-phase" && e.stage === "greet" && e.phase === "commit", from);
  const result = await next((e) => e.type === "result", from);
  start.push(Date.parse(begun.time) - saved);
  output.push(Date.parse(result.time) - saved);
  step.push(Date.parse(commit.time) - Date.parse(run.time));
  await new Promise((r) => setTimeout(r, 300));
}
child.kill("SIGINT");
const s = median(start), o = median(output), st = median(step);
const budget = 2 * noopMs + st;
console.log(`rounds: ${rounds} (medians)`);
console.log(`no-op mstage up:          ${noopMs} ms`);
console.log(`save → rebuild start:     ${s} ms   target ≤ 150 ms   ${s <= 150 ? "ok" : "MISSED"}`);
console.log(`the step itself:          ${st} ms`);
console.log(`save → new output:        ${o} ms   target ≤ 2×no-op + step = ${budget} ms   ${o <= budget ? "ok" : "MISSED"} (ratio ${(o / budget).toFixed(2)})`);
