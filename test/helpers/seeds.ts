// The seed documents (../shared/seeds/*.txt beside the repository): the Dockerfiles, stacker.yaml
// files and sources they show, taken out of the prose exactly as written.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** shared/seeds in the nearest directory above the repository that has one (a worktree sits deeper). */
export const SEEDS = ((): string => {
  let dir = new URL("../..", import.meta.url).pathname;
  for (;;) {
    const parent = dirname(dir);
    if (existsSync(join(parent, "shared", "seeds"))) return join(parent, "shared", "seeds");
    if (parent === dir) return join(new URL("../../..", import.meta.url).pathname, "shared", "seeds");
    dir = parent;
  }
})();

export function seedsMissing(): string | undefined {
  return existsSync(SEEDS) ? undefined : `the seed documents are not at ${SEEDS} (shared/ beside the repository)`;
}

export function seedText(prefix: string): string {
  const name = readdirSync(SEEDS).find((f) => f.startsWith(prefix));
  if (!name) throw new Error(`no seed ${prefix}_*.txt in ${SEEDS}`);
  return readFileSync(join(SEEDS, name), "utf8");
}

/** Seed 002: the Dockerfiles shown as `>>> ` lines, one per block of consecutive lines. */
export function quotedDockerfiles(text: string): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith(">>> ")) cur.push(line.slice(4));
    else if (cur.length) {
      out.push(cur.join("\n") + "\n");
      cur = [];
    }
  }
  if (cur.length) out.push(cur.join("\n") + "\n");
  return out;
}

/** Fenced blocks of a language: ```dockerfile … ``` */
export function fenced(text: string, lang: string): string[] {
  return [...text.matchAll(new RegExp("```" + lang + "[^\\n]*\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!);
}

/** Files written by `cat > "NAME" << EOF … EOF` in a shell block. */
export function catHeredocs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/cat > "?([^"\s]+)"? << ?'?(\w+)'?\n([\s\S]*?)\n\2\n/g)) out[m[1]!] = m[3]! + "\n";
  return out;
}

/** Blocks indented by four spaces (Markdown code), dedented. */
export function indentedBlocks(text: string): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  const flush = () => {
    while (cur.length && cur[cur.length - 1] === "") cur.pop();
    if (cur.length) out.push(cur.join("\n") + "\n");
    cur = [];
  };
  for (const line of text.split("\n")) {
    if (line.startsWith("    ")) cur.push(line.slice(4));
    else if (line.trim() === "" && cur.length) cur.push("");
    else flush();
  }
  flush();
  return out;
}
