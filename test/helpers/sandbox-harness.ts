// Drives the sandbox the way the builder does, for tests: re-executes into mstage's user namespace,
// mounts a base rootfs with a fresh upper dir, runs steps, and reports (as one JSON line on stdout)
// their results and what the upper dir holds. Run: node --import tsx test/helpers/sandbox-harness.ts JSON
import { mkdtemp, readdir, lstat, readFile, rm, mkdir, readlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reexecInUserNamespace, withRootfs, runStep, type RunStepOptions } from "@mstage/runtime";
import { busyboxRootfs, debianMinbase } from "./rootfs.ts";

export interface HarnessStep {
  argv: string[];
  env?: Record<string, string>;
  network?: "host" | "none";
  user?: string;
  workdir?: string;
  secrets?: { id: string; text: string }[];
  binds?: { target: string; host: string; readonly: boolean }[];
  caches?: { target: string; dir: string }[];
  /** Like `mstage shell`: the step uses the harness's own stdio (no output is captured). */
  tty?: boolean;
}

export interface HarnessScenario {
  base: "busybox" | "debian" | "scratch";
  steps: HarnessStep[];
  /** Report upper-dir files whose content contains this string. */
  grep?: string;
  /** Instead of steps: mount the base read-only, list "/", try a write, throw inside withRootfs. */
  readOnly?: boolean;
  /** Mount the rootfs afresh for each step (as separate stages would), over the same upper dir. */
  separateMounts?: boolean;
}

/** Runs the harness as `user` (see users.ts) and parses its report. */
export async function runHarness(user: string, scenario: HarnessScenario, timeoutMs = 300_000): Promise<HarnessResult & { stderrLog: string }> {
  const { runAs } = await import("./users.ts");
  const r = await runAs(user, [process.execPath, "--import", "tsx", HARNESS, JSON.stringify(scenario)], { cwd: REPO, timeoutMs });
  if (r.code !== 0) throw new Error(`sandbox harness as ${user} failed (exit ${r.code ?? r.signal}):\n${r.stderr.slice(-3000)}`);
  return { ...(JSON.parse(r.stdout.trim().split("\n").pop()!) as HarnessResult), stderrLog: r.stderr };
}

export const HARNESS = new URL(import.meta.url).pathname;
export const REPO = new URL("../..", import.meta.url).pathname;

export interface HarnessResult {
  /** `ms`: wall time of runStep, `cpuMs`: CPU time of its processes (user+sys), for the per-step overhead figures. */
  steps: { exitCode: number; stdout: string; stderr: string; ms: number; cpuMs: number }[];
  /** Upper dir entries: "/path" plus " -> target" for symlinks, " (whiteout)" for whiteouts. */
  upper: string[];
  grepHits: string[];
  tmp: string;
  readOnly?: { entries: string[]; writeError: string; thrown: string; mountsLeft: string[] };
}

async function listUpper(dir: string, grep: string | undefined, rel = ""): Promise<{ entries: string[]; hits: string[] }> {
  const entries: string[] = [];
  const hits: string[] = [];
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const p = `${rel}/${name}`;
    const st = await lstat(join(dir, p));
    if (st.isCharacterDevice() && st.rdev === 0) entries.push(`${p} (whiteout)`);
    else if (st.isSymbolicLink()) entries.push(`${p} -> ${await readlink(join(dir, p))}`);
    else entries.push(p);
    if (st.isDirectory()) {
      const sub = await listUpper(dir, grep, p);
      entries.push(...sub.entries);
      hits.push(...sub.hits);
    } else if (st.isFile() && grep && (await readFile(join(dir, p))).includes(grep)) hits.push(p);
  }
  return { entries, hits };
}

async function readOnlyProbe(lowers: string[], tmp: string): Promise<NonNullable<HarnessResult["readOnly"]>> {
  let entries: string[] = [];
  let writeError = "";
  let thrown = "";
  try {
    await withRootfs({ lowers, tmpDir: tmp }, async (root) => {
      entries = (await readdir(root)).sort();
      try {
        await writeFile(join(root, "new-file"), "x");
      } catch (e) {
        writeError = (e as NodeJS.ErrnoException).code ?? String(e);
      }
      throw new Error("thrown inside withRootfs");
    });
  } catch (e) {
    thrown = (e as Error).message;
  }
  const mountsLeft = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").filter((l) => l.includes(tmp));
  return { entries, writeError, thrown, mountsLeft };
}

/** CPU time of this process's finished children and their descendants (cutime+cstime, in USER_HZ ticks of 10 ms). */
async function childrenCpuMs(): Promise<number> {
  const stat = await readFile("/proc/self/stat", "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[13]) + Number(f[14])) * 10;
}

async function main(): Promise<void> {
  await reexecInUserNamespace(undefined, { onNote: (m) => process.stderr.write(`note: ${m}\n`) });
  const scenario = JSON.parse(process.argv[2]) as HarnessScenario;
  const lowers = scenario.base === "busybox" ? [busyboxRootfs()] : scenario.base === "debian" ? [debianMinbase()] : [];
  const tmp = await mkdtemp(join(tmpdir(), "mstage-harness-"));
  process.stderr.write(`harness tmp ${tmp}\n`);
  const abort = new AbortController();
  // Like `mstage up`: SIGINT/SIGTERM abort the build. A tty step (like `mstage shell`) leaves Ctrl-C
  // to the step.
  const stop = () => abort.abort(new Error("interrupted"));
  if (!scenario.steps.some((s) => s.tty)) process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    if (scenario.readOnly) {
      const result: HarnessResult = { steps: [], upper: [], grepHits: [], tmp, readOnly: await readOnlyProbe(lowers, tmp) };
      process.stdout.write(JSON.stringify(result) + "\n");
      return;
    }
    const upper = join(tmp, "upper");
    await mkdir(upper);
    const steps: HarnessResult["steps"] = [];
    const run = async (rootfs: string, s: HarnessStep) => {
      let stdout = "";
      let stderr = "";
      const opts: RunStepOptions = {
        rootfs,
        argv: s.argv,
        env: s.env ?? {},
        network: s.network ?? "host",
        user: s.user,
        workdir: s.workdir,
        binds: s.binds,
        caches: s.caches,
        secrets: s.secrets?.map((x) => ({ id: x.id, data: Buffer.from(x.text) })),
        signal: abort.signal,
        tty: s.tty,
        onOutput: (chunk, stream) => {
          if (stream === "stdout") stdout += chunk;
          else stderr += chunk;
          process.stderr.write(chunk);
        },
      };
      const t0 = performance.now();
      const c0 = await childrenCpuMs();
      const r = await runStep(opts);
      steps.push({ exitCode: r.exitCode, stdout, stderr, ms: performance.now() - t0, cpuMs: (await childrenCpuMs()) - c0 });
    };
    if (scenario.separateMounts) {
      for (const s of scenario.steps) await withRootfs({ lowers, upper, tmpDir: tmp }, (rootfs) => run(rootfs, s));
    } else {
      await withRootfs({ lowers, upper, tmpDir: tmp }, async (rootfs) => {
        for (const s of scenario.steps) await run(rootfs, s);
      });
    }
    const { entries, hits } = await listUpper(upper, scenario.grep);
    const result: HarnessResult = { steps, upper: entries, grepHits: hits, tmp };
    process.stdout.write(JSON.stringify(result) + "\n");
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] === HARNESS) await main();
