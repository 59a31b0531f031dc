// Extended attributes, in bulk. Node has no xattr API: a commit's scan reads them with the native
// lister where the build made one (layer/commit.ts scanTree); otherwise, and for every other read,
// whole trees go through one `getfattr -R` (one process walks the tree in C: about as cheap as the
// lstat walk itself), and batches of settings go through one `setfattr`. Each runs through the sandbox's
// small shell (sandbox/tool-runner.ts), which a commit already uses for its sync: a spawn of this
// large process costs 15-70 ms under load, more than a small stage's whole commit, and the shell's
// costs a tenth of that. Per-file spawning would cost ~1 ms a file; these cost one per layer.
import { readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { UserError } from "@mstage/core";
import { runTool } from "../sandbox/tool-runner.ts";
import { findTool } from "../sandbox/tools.ts";

export type Xattrs = Array<[name: string, value: Buffer]>;

/** Overlayfs keeps its private bookkeeping here; never copied into or out of a layer. */
export function isOverlayPrivate(name: string): boolean {
  return name.startsWith("user.overlay.") || name.startsWith("trusted.overlay.");
}

function attrTool(tool: "getfattr" | "setfattr"): string {
  const path = findTool(tool);
  if (!path) throw new UserError(`cannot run ${tool}: it is not installed; install it with \`apt-get install attr\``);
  return path;
}

let scratchCount = 0;
/** A file for one tool's input or output: the small shell passes no stdin and drops stdout. */
function scratchFile(what: string): string {
  return `${tmpdir()}/mstage-${what}-${process.pid}-${++scratchCount}`;
}

/** stderr of a tool that ran through runTool and failed, else the error's message. */
function stderrOf(e: unknown): string {
  return ((e as { stderr?: string }).stderr ?? (e as Error).message).trim();
}

/**
 * All xattrs under `dir`, by path relative to it ("" for dir itself, "a/b" below it); files without
 * any are absent. Symlinks are not followed. With `name`, only that entry of `dir` (and what is
 * below it), keyed "name", "name/a", ….
 */
export async function readTreeXattrs(dir: string, name = "."): Promise<Map<string, Xattrs>> {
  const getfattr = attrTool("getfattr");
  const out = scratchFile("xattrs");
  try {
    // getfattr's dump goes to a file: the tool runner keeps no stdout.
    await runTool(getfattr, ["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "--", name], { cwd: dir, stdout: out }).catch((e) => {
      throw new Error(`getfattr -R in ${dir} failed: ${stderrOf(e)}`);
    });
    return parseDump((await readFile(out)).toString("latin1"));
  } finally {
    await rm(out, { force: true });
  }
}

/** getfattr writes names with \ooo escapes for unprintable bytes and backslashes. */
function unescapeOctal(s: string): string {
  const bytes = Buffer.from(s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), "latin1");
  return bytes.toString("utf8");
}

function parseDump(text: string): Map<string, Xattrs> {
  const map = new Map<string, Xattrs>();
  let current: Xattrs | null = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("# file: ")) {
      let rel = unescapeOctal(line.slice(8));
      rel = rel === "." ? "" : rel.replace(/^\.\//, "");
      current = [];
      map.set(rel, current);
    } else if (current && line && !line.startsWith("#")) {
      const eq = line.indexOf("=");
      const name = unescapeOctal(eq < 0 ? line : line.slice(0, eq));
      const raw = eq < 0 ? "" : line.slice(eq + 1);
      current.push([name, raw.startsWith("0x") ? Buffer.from(raw.slice(2), "hex") : Buffer.alloc(0)]);
    }
  }
  return map;
}

/** \ooo-escapes everything but plain path characters, the way setfattr --restore reads names back. */
function escapeName(s: string): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9._\/+,:@%~-]/.test(c) ? c : "\\" + b.toString(8).padStart(3, "0");
  }
  return out;
}

/**
 * Sets xattrs on paths relative to `dir` (never following a final symlink). Returns one message per
 * setting the kernel refused (e.g. security.* without the capability), so callers can note them.
 */
export async function writeXattrs(dir: string, items: Array<{ rel: string; name: string; value: Buffer }>): Promise<string[]> {
  if (!items.length) return [];
  const setfattr = attrTool("setfattr");
  let script = "";
  for (const it of items) {
    script += `# file: ${escapeName(it.rel === "" ? "." : it.rel)}\n${escapeName(it.name)}=0x${it.value.toString("hex")}\n\n`;
  }
  const input = scratchFile("setfattr");
  await writeFile(input, script);
  try {
    await runTool(setfattr, ["-h", `--restore=${input}`], { cwd: dir });
    return [];
  } catch (e) {
    // setfattr goes on past a refused setting and exits 1: its stderr names each one.
    return stderrOf(e).split("\n").filter(Boolean);
  } finally {
    await rm(input, { force: true });
  }
}

/** Removes xattr `name` from each of `paths` (relative to `dir`, final symlinks not followed). */
export async function removeXattr(dir: string, name: string, paths: string[]): Promise<void> {
  const setfattr = attrTool("setfattr");
  // A few hundred paths a call keeps the argument list far below ARG_MAX.
  for (let i = 0; i < paths.length; i += 500) {
    await runTool(setfattr, ["-h", "-x", name, "--", ...paths.slice(i, i + 500)], { cwd: dir }).catch((e) => {
      throw new Error(`setfattr -x ${name} in ${dir} failed: ${stderrOf(e)}`);
    });
  }
}
