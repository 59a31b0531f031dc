// Reads a Dockerfile into instructions with dockerfile-ast (the parser VS Code's Docker extension
// uses): instruction boundaries, line continuations, comments inside continued lines, flags and
// the `# escape=` directive. Heredoc bodies and exec-form JSON are read here, as BuildKit does.
import { createRequire } from "node:module";

// Loaded on first use: every `plan` loads this module with the API, and the parser (with the
// language-server packages under it) costs more than a no-op plan of a project without Dockerfiles.
const requireLazily = createRequire(import.meta.url);
let parser: typeof import("dockerfile-ast").DockerfileParser | undefined;
const dockerfileParser = () => (parser ??= (requireLazily("dockerfile-ast") as typeof import("dockerfile-ast")).DockerfileParser);

export interface Heredoc {
  name: string;
  /** The body, each line ending in "\n" (tabs stripped for `<<-`). */
  body: string;
  /** An unquoted delimiter: the body's variables expand (COPY). */
  expand: boolean;
}

export interface Flag {
  name: string;
  value: string | undefined;
}

export interface Instruction {
  /** 1-based line of the keyword. */
  line: number;
  keyword: string;
  /** The instruction's first line as written, for messages. */
  text: string;
  flags: Flag[];
  /** The arguments after the flags, continuations joined; heredoc bodies included. */
  args: string;
  /** The arguments' first line (without heredoc bodies). */
  command: string;
  heredocs: Heredoc[];
  /** Set when the arguments are a JSON array of strings (exec form). */
  json?: string[];
}

export interface ParsedDockerfile {
  escape: string;
  instructions: Instruction[];
}

/** A Dockerfile mistake at one line: the frontend turns it into `Dockerfile:LINE: message`. */
export class DockerfileError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

export const KEYWORDS = [
  "FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "EXPOSE", "CMD", "ENTRYPOINT", "LABEL",
  "VOLUME", "STOPSIGNAL", "SHELL", "HEALTHCHECK", "ONBUILD", "MAINTAINER",
];
const WITH_FLAGS = new Set(["FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"]);
const HEREDOC = /<<(-?)(["']?)([A-Za-z0-9_.-]+)\2/g;

export function parseDockerfile(text: string): ParsedDockerfile {
  const df = dockerfileParser().parse(text);
  const escape = df.getEscapeCharacter();
  const lines = text.split(/\r?\n/);
  const instructions: Instruction[] = [];
  for (const ins of df.getInstructions()) {
    const start = ins.getRange().start.line;
    const line = start + 1;
    const keyword = ins.getKeyword();
    const first = lines[start] ?? "";
    if (!KEYWORDS.includes(keyword)) {
      throw new DockerfileError(line, `unknown instruction: ${ins.getInstruction()}`);
    }
    const flags: Flag[] = [];
    const withFlags = ins as unknown as { getFlags?(): { getName(): string; getValue(): string | null }[] };
    if (WITH_FLAGS.has(keyword) && withFlags.getFlags) {
      for (const f of withFlags.getFlags()) flags.push({ name: f.getName(), value: f.getValue() ?? undefined });
    } else if (/^\s*--[a-z]/.test(ins.getArgumentsContent() ?? "")) {
      throw new DockerfileError(line, `${keyword} takes no flags`);
    }
    let args = (ins.getArgumentsContent() ?? "").replace(/^\s+/, "");
    // dockerfile-ast keeps a flag without arguments in the arguments; nothing should follow flags.
    if (args === "" && !["HEALTHCHECK"].includes(keyword)) throw new DockerfileError(line, `${keyword} requires at least one argument`);
    const nl = args.indexOf("\n");
    const command = nl < 0 ? args : args.slice(0, nl);
    const heredocs = ["RUN", "COPY", "ADD"].includes(keyword) ? readHeredocs(line, command, nl < 0 ? "" : args.slice(nl + 1)) : [];
    if (heredocs.length === 0 && nl >= 0) args = args.replace(/\n/g, "");
    const json = execForm(args);
    instructions.push({ line, keyword, text: first, flags, args, command, heredocs, ...(json ? { json } : {}) });
  }
  return { escape, instructions };
}

function readHeredocs(line: number, command: string, rest: string): Heredoc[] {
  const out: Heredoc[] = [];
  const body = rest === "" ? [] : rest.split("\n");
  let at = 0;
  for (const m of command.matchAll(HEREDOC)) {
    const strip = m[1] === "-";
    const name = m[3]!;
    const lines: string[] = [];
    for (;;) {
      if (at >= body.length) throw new DockerfileError(line, `unterminated heredoc <<${name}: no line "${name}" ends it`);
      const l = body[at++]!;
      const cmp = strip ? l.replace(/^\t+/, "") : l;
      if (cmp === name) break;
      lines.push(cmp);
    }
    out.push({ name, body: lines.map((l) => l + "\n").join(""), expand: m[2] === "" });
  }
  return out;
}

function execForm(args: string): string[] | undefined {
  const t = args.trim();
  if (!t.startsWith("[")) return undefined;
  try {
    const v: unknown = JSON.parse(t);
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v;
  } catch {
    // Not JSON: Docker runs it as shell form.
  }
  return undefined;
}
