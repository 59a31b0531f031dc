// The design rules test/depcheck.test.ts enforces, as pure functions over source texts so that a
// unit test can show each rule failing on a deliberately wrong import:
//   - packages point one way (cli → runtime → core) and core does no process or network I/O;
//   - inside a package, folders (src/<folder>/, and each file directly in src/) form no cycle;
//   - libraries (core, runtime) never call `console`: they report through events, the CLI renders;
//   - examples/ import only the public `mstage` API.
import { posix } from "node:path";

export interface SourceFile {
  /** Path from the repository root, with forward slashes: packages/cli/src/app/up-run.ts. */
  path: string;
  text: string;
}

export const RANK: Record<string, number> = { core: 0, runtime: 1, cli: 2 };
const NAME_OF: Record<string, string> = { "@mstage/core": "core", "@mstage/runtime": "runtime", mstage: "cli" };
// A worker thread is neither a process nor a socket: core's local() walk lists directories on threads.
const FORBIDDEN_IN_CORE = ["node:child_process", "node:net", "node:http", "node:https", "node:dgram", "undici"];

export function importsOf(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm)) {
    specs.push(m[1] ?? m[2] ?? m[3]!);
  }
  return specs;
}

const isTest = (path: string) => /\.test\.ts$/.test(path);

/** Wrong arrows between packages, and I/O imports in core. `pkg` is the package the files belong to. */
export function packageViolations(pkg: string, deps: string[], files: SourceFile[]): string[] {
  const out: string[] = [];
  for (const dep of deps) {
    const other = NAME_OF[dep];
    if (other && !(RANK[other]! < RANK[pkg]!)) out.push(`packages/${pkg}/package.json depends on ${dep}`);
  }
  const src = `packages/${pkg}/src`;
  for (const f of files) {
    for (const spec of importsOf(f.text)) {
      const other = NAME_OF[spec] ?? (spec.includes("packages/") ? spec.split("packages/")[1]!.split("/")[0] : undefined);
      if (other && other !== pkg && !(RANK[other]! < RANK[pkg]!)) out.push(`${f.path} imports ${spec}`);
      // The package's own manifest is the one file outside src/ a source may read (its version).
      const target = posix.join(posix.dirname(f.path), spec);
      if (spec.startsWith("..") && !target.startsWith(src + "/") && target !== `packages/${pkg}/package.json`) {
        out.push(`${f.path} reaches outside its package: ${spec}`);
      }
      if (pkg === "core" && !isTest(f.path) && FORBIDDEN_IN_CORE.includes(spec)) {
        out.push(`${f.path} imports ${spec}: core does no process or network I/O`);
      }
    }
  }
  return out;
}

/** The folder a source belongs to: "<folder>/" for src/<folder>/…, the file itself when it sits directly in src/. */
function folderOf(path: string, src: string): string | undefined {
  if (!path.startsWith(src + "/")) return undefined;
  const rest = path.slice(src.length + 1);
  const slash = rest.indexOf("/");
  return slash < 0 ? rest : rest.slice(0, slash) + "/";
}

/** Cycles between the folders of one package's sources (tests left out), each as "a → b → a". */
export function folderCycles(pkg: string, files: SourceFile[]): string[] {
  const src = `packages/${pkg}/src`;
  const edges = new Map<string, Map<string, string>>();
  for (const f of files) {
    if (isTest(f.path)) continue;
    const from = folderOf(f.path, src);
    if (!from) continue;
    for (const spec of importsOf(f.text)) {
      if (!spec.startsWith(".")) continue;
      const to = folderOf(posix.join(posix.dirname(f.path), spec), src);
      if (!to || to === from) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      // Remember one import behind each arrow, to name it in the message.
      if (!edges.get(from)!.has(to)) edges.get(from)!.set(to, `${f.path} imports ${spec}`);
    }
  }
  const cycles: string[] = [];
  const seen = new Set<string>();
  const reported = new Set<string>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const visit = (n: string) => {
    seen.add(n);
    stack.push(n);
    onStack.add(n);
    for (const m of [...(edges.get(n)?.keys() ?? [])].sort()) {
      if (onStack.has(m)) {
        const loop = [...stack.slice(stack.indexOf(m)), m];
        const key = [...new Set(loop)].sort().join(",");
        if (!reported.has(key)) {
          reported.add(key);
          const why = loop.slice(0, -1).map((a, i) => edges.get(a)!.get(loop[i + 1]!)!);
          cycles.push(`${pkg}: ${loop.join(" → ")} (${why.join("; ")})`);
        }
      } else if (!seen.has(m)) visit(m);
    }
    stack.pop();
    onStack.delete(n);
  };
  for (const n of [...edges.keys()].sort()) if (!seen.has(n)) visit(n);
  return cycles;
}

/** Calls of `console` in a library's sources (tests may print). */
export function consoleCalls(files: SourceFile[]): string[] {
  const out: string[] = [];
  for (const f of files) {
    if (isTest(f.path)) continue;
    f.text.split("\n").forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, "");
      if (/\bconsole\s*\.\s*\w+/.test(code)) out.push(`${f.path}:${i + 1} calls console: report through an event and let the CLI render it`);
    });
  }
  return out;
}

/** Imports in examples/ other than the public `mstage` API. */
export function exampleImports(files: SourceFile[]): string[] {
  const out: string[] = [];
  for (const f of files) for (const spec of importsOf(f.text)) if (spec !== "mstage") out.push(`${f.path} imports ${spec}: examples use only the public "mstage" API`);
  return out;
}
