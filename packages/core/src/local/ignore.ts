// gitignore-syntax patterns, for `.mstageignore` and `local(…, { exclude })`, and the translation
// of a `.dockerignore` (Docker's own syntax) into them.

interface Rule {
  re: RegExp;
  negate: boolean;
  dirOnly: boolean;
}

/** A compiled pattern list: the last matching pattern decides, as in gitignore. */
export class IgnoreRules {
  private readonly rules: Rule[];
  /**
   * @param file the ignore file the patterns came from (".mstageignore" or ".dockerignore"), so a
   * plan can say which one applied
   */
  constructor(
    patterns: readonly string[],
    readonly file?: string,
  ) {
    this.rules = patterns.map(compile).filter((r): r is Rule => r !== undefined);
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** @param rel path relative to the rules' base, "/"-separated, no leading slash */
  ignores(rel: string, isDir: boolean): boolean {
    let ignored = false;
    for (const r of this.rules) {
      if (r.dirOnly && !isDir) continue;
      if (r.negate === ignored && r.re.test(rel)) ignored = !r.negate;
    }
    return ignored;
  }
}

export function parseIgnoreFile(text: string): string[] {
  return text.split(/\r?\n/);
}

/**
 * A `.dockerignore` as gitignore patterns. Docker's patterns (moby/patternmatcher) are paths from
 * the context root, cleaned like Go's filepath.Clean, where `*` and `?` stay within one name, `**`
 * spans directories, `!` re-includes, and a match on a directory covers what is below it. So each
 * becomes an anchored gitignore pattern: `*.log` matches only at the top, as in Docker.
 */
export function dockerignorePatterns(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let p = raw.trim();
    if (p === "" || p.startsWith("#")) continue;
    let negate = "";
    if (p.startsWith("!")) {
      negate = "!";
      p = p.slice(1).trim();
    }
    p = cleanPath(p);
    if (p === "" || p === ".") continue;
    out.push(`${negate}/${p}`);
  }
  return out;
}

/** Go's filepath.Clean for a relative pattern, minus any leading "/" (Docker strips it too). */
function cleanPath(p: string): string {
  const parts: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return parts.join("/");
}

function compile(line: string): Rule | undefined {
  let p = line.replace(/(?<!\\)\s+$/, "");
  if (p === "" || p.startsWith("#")) return undefined;
  let negate = false;
  if (p.startsWith("!")) {
    negate = true;
    p = p.slice(1);
  } else if (p.startsWith("\\!") || p.startsWith("\\#")) {
    p = p.slice(1);
  }
  let dirOnly = false;
  if (p.endsWith("/")) {
    dirOnly = true;
    p = p.slice(0, -1);
  }
  if (p === "") return undefined;
  const anchored = p.includes("/");
  if (p.startsWith("/")) p = p.slice(1);

  let re = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "*" && p[i + 1] === "*") {
      const atStart = i === 0 || p[i - 1] === "/";
      const atEnd = i + 2 === p.length;
      if (atStart && p[i + 2] === "/") {
        re += "(?:.*/)?";
        i += 2;
      } else if (atStart && atEnd) {
        re += ".*";
        i += 1;
      } else {
        re += "[^/]*";
        i += 1;
      }
    } else {
      const [part, last] = wildcardAt(p, i, "!");
      re += part;
      i = last;
    }
  }
  // A pattern also matches everything below a matching directory.
  const body = (anchored ? "^" : "^(?:.*/)?") + re + (dirOnly ? "$" : "(?:/.*)?$");
  return { re: new RegExp(body), negate, dirOnly };
}

/**
 * The regular expression for the wildcard or character at p[i] of a pattern (`*`, `?`, `[…]`, a
 * `\` escape, a plain character) and the index of its last character. `negators` are what negate
 * a `[…]` class: gitignore's `!`; Go filepath.Match's `^` and `!`.
 */
export function wildcardAt(p: string, i: number, negators: string): [string, number] {
  const c = p[i]!;
  if (c === "*") return ["[^/]*", i];
  if (c === "?") return ["[^/]", i];
  if (c === "[") {
    const end = p.indexOf("]", i + 2);
    if (end < 0) return ["\\[", i];
    let cls = p.slice(i + 1, end).replace(/\\/g, "\\\\");
    if (negators.includes(cls[0]!)) cls = "^" + cls.slice(1);
    return [`[${cls}]`, end];
  }
  if (c === "\\" && i + 1 < p.length) return [escape(p[i + 1]!), i + 1];
  return [escape(c), i];
}

function escape(c: string): string {
  return /[.+^${}()|[\]\\/-]/.test(c) ? "\\" + c : c;
}

/**
 * BuildKit's include filter (`llb.IncludePatterns`, matched by moby/patternmatcher): each pattern
 * is a path from the source root, cleaned like Go's filepath.Clean (a leading "/" is dropped, as
 * Docker drops it), where `*`, `?` and `[…]` stay within one name and `**` spans directories; a
 * pattern matching a directory matches everything below it; `!` excludes again, and the last
 * pattern that matches decides. Unlike gitignore, `x` matches only a top-level `x`, not `a/x`.
 */
export class AnchoredPatterns {
  private readonly patterns: Array<{ test: (path: string) => boolean; exclusion: boolean; depth: number }>;

  constructor(patterns: readonly string[]) {
    this.patterns = [];
    for (const raw of patterns) {
      let p = raw.trim();
      if (p === "") continue;
      const exclusion = p.startsWith("!");
      if (exclusion) p = p.slice(1).trim();
      p = cleanPath(p);
      if (p === "") continue;
      this.patterns.push({ test: mobyMatcher(p), exclusion, depth: p.split("/").length });
    }
  }

  /** patternmatcher's MatchesOrParentMatches: `rel` or one of its parent directories matches. */
  matches(rel: string): boolean {
    let matched = false;
    const parts = rel.split("/");
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue;
      let m = p.test(rel);
      for (let i = 1; !m && i < parts.length; i++) m = p.test(parts.slice(0, i).join("/"));
      if (m) matched = !p.exclusion;
    }
    return matched;
  }
}

/** One pattern as patternmatcher compiles it: exact, `dir/**` a prefix, `**` + rest a suffix, else a regexp. */
function mobyMatcher(p: string): (path: string) => boolean {
  let re = "^";
  let type: "exact" | "prefix" | "suffix" | "regexp" = "exact";
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === "*" && p[i + 1] === "*") {
      const leading = i === 0;
      i++;
      if (p[i + 1] === "/") i++;
      if (i + 1 === p.length) {
        if (type === "exact") type = "prefix";
        else {
          re += ".*";
          type = "regexp";
        }
      } else {
        re += "(.*/)?";
        type = "regexp";
      }
      // A leading ** makes a suffix match of the rest, as in patternmatcher.
      if (leading) type = "suffix";
    } else if (c === "*") {
      re += "[^/]*";
      type = "regexp";
    } else if (c === "?") {
      re += "[^/]";
      type = "regexp";
    } else if (c === "\\" && i + 1 < p.length) {
      re += "\\" + p[++i];
      type = "regexp";
    } else if (c === "[" || c === "]") {
      re += c;
      type = "regexp";
    } else re += /[.+()|{}$]/.test(c) ? "\\" + c : c;
  }
  switch (type) {
    case "exact":
      return (path) => path === p;
    case "prefix": {
      const prefix = p.slice(0, -2);
      return (path) => path.startsWith(prefix);
    }
    case "suffix": {
      const suffix = p.slice(2);
      return (path) => path.endsWith(suffix) || (suffix.startsWith("/") && path === suffix.slice(1));
    }
    case "regexp": {
      let compiled: RegExp;
      try {
        compiled = new RegExp(re + "$");
      } catch {
        return () => false;
      }
      return (path) => compiled.test(path);
    }
  }
}
