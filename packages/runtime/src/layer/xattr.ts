// Extended attributes, in bulk. Node has no xattr API and mstage takes no native addon, so whole
// trees go through one `getfattr -R` (one process walks the tree in C: about as cheap as the lstat
// walk itself) and batches of settings through one `setfattr --restore`. Per-file spawning would
// cost ~1 ms a file; these cost one spawn per layer.
import { spawn } from "node:child_process";
import { UserError } from "@mstage/core";

export type Xattrs = Array<[name: string, value: Buffer]>;

/** Overlayfs keeps its private bookkeeping here; never copied into or out of a layer. */
export function isOverlayPrivate(name: string): boolean {
  return name.startsWith("user.overlay.") || name.startsWith("trusted.overlay.");
}

function missingTool(tool: string, e: unknown): UserError {
  return new UserError(`cannot run ${tool}: ${(e as Error).message}; install it with \`apt-get install attr\``);
}

/**
 * All xattrs under `dir`, by path relative to it ("" for dir itself, "a/b" below it); files without
 * any are absent. Symlinks are not followed. With `name`, only that entry of `dir` (and what is
 * below it), keyed "name", "name/a", ….
 */
export function readTreeXattrs(dir: string, name = "."): Promise<Map<string, Xattrs>> {
  return new Promise((resolve, reject) => {
    const child = spawn("getfattr", ["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "--", name], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", (e) => reject(missingTool("getfattr", e)));
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`getfattr -R in ${dir} failed (exit ${code}): ${err.trim()}`));
      resolve(parseDump(Buffer.concat(out).toString("latin1")));
    });
  });
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
export function writeXattrs(dir: string, items: Array<{ rel: string; name: string; value: Buffer }>): Promise<string[]> {
  if (!items.length) return Promise.resolve([]);
  let script = "";
  for (const it of items) {
    script += `# file: ${escapeName(it.rel === "" ? "." : it.rel)}\n${escapeName(it.name)}=0x${it.value.toString("hex")}\n\n`;
  }
  return new Promise((resolve, reject) => {
    const child = spawn("setfattr", ["-h", "--restore=-"], { cwd: dir, stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("error", (e) => reject(missingTool("setfattr", e)));
    child.on("close", () => resolve(err.split("\n").filter(Boolean)));
    child.stdin.end(script);
  });
}
