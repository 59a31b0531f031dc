// `mstage convert`: writes the stages a frontend made from a Dockerfile or a stacker.yaml as an
// images.ts, with a named const per stage, `from: previousStep` chains where the file had layers,
// and the file's own comments above the step they preceded. The stages are the ones dockerfile()
// and stacker() build, so the generated file builds the same image.
import { dependenciesFirst } from "../graph.ts";
import type { Base, Source, Stage } from "../model.ts";

export interface ConvertInput {
  /** Every stage the frontend made, in definition order. */
  stages: readonly Stage[];
  /** Which of them the file's images are (exported). */
  exported: readonly Stage[];
  /** The converted file as shown in comments ("Dockerfile"), and its text, for carrying comments. */
  file: string;
  text: string;
  /** "#" for Dockerfiles and YAML alike. */
  kind: "dockerfile" | "stacker";
}

export function convertToImagesTs(c: ConvertInput): string {
  const lines = c.text.split(/\r?\n/);
  const used = new Set<string>();
  const names = new Map<Stage, string>();
  // Dependencies first; only the stages the exported ones need.
  const order = dependenciesFirst(c.stages.filter((s) => c.exported.includes(s)));
  for (const s of order) names.set(s, identifier(s.name, used));
  const helpers = new Set<string>(["stage"]);
  const body: string[] = [];
  for (const s of order) {
    const comments = s.spec.origin ? commentsAbove(lines, s.spec.origin.line) : [];
    const origin = s.spec.origin ? `// ${c.file}:${s.spec.origin.line}: ${lines[s.spec.origin.line - 1]?.trim() ?? ""}` : undefined;
    for (const comment of comments) body.push(`// ${comment}`);
    if (origin) body.push(origin.length > 120 ? origin.slice(0, 119) + "…" : origin);
    const exported = c.exported.includes(s) ? "export " : "";
    body.push(`${exported}const ${names.get(s)} = stage(${JSON.stringify(s.name)}, ${specText(s)});`, "");
  }
  const header = [
    `// Converted by \`mstage convert\` from ${c.file}: the same steps, each a stage (one cached layer).`,
    `import { ${[...helpers].sort().join(", ")} } from "mstage";`,
    "",
  ];
  return [...header, ...body].join("\n").replace(/\n+$/, "\n");

  function specText(s: Stage): string {
    const p = s.spec;
    const out: string[] = [`from: ${baseText(p.from)}`];
    if (p.copy.length) out.push(`copy: {\n${p.copy.map(([d, src]) => `    ${JSON.stringify(d)}: ${sourceText(src)},`).join("\n")}\n  }`);
    if (p.run.length) out.push(`run: ${p.run.length === 1 ? str(p.run[0]!) : `[${p.run.map(str).join(", ")}]`}`);
    if (p.run.length && (p.shell.length !== 2 || p.shell[0] !== "/bin/sh" || p.shell[1] !== "-c")) out.push(`shell: ${JSON.stringify(p.shell)}`);
    if (Object.keys(p.env).length) out.push(`env: ${JSON.stringify(p.env)}`);
    if (p.workdir) out.push(`workdir: ${JSON.stringify(p.workdir)}`);
    if (p.user) out.push(`user: ${JSON.stringify(p.user)}`);
    if (p.runAs) out.push(`runAs: ${JSON.stringify(p.runAs)}`);
    if (p.entrypoint) out.push(`entrypoint: ${JSON.stringify(p.entrypoint)}`);
    if (p.cmd) out.push(`cmd: ${JSON.stringify(p.cmd)}`);
    if (p.expose.length) out.push(`expose: ${JSON.stringify(p.expose)}`);
    if (p.healthcheck) out.push(`healthcheck: ${healthcheckText(p.healthcheck)}`);
    if (p.onBuild) out.push(`onBuild: ${JSON.stringify(p.onBuild)}`);
    if (Object.keys(p.labels).length) out.push(`labels: ${JSON.stringify(p.labels)}`);
    if (p.labelsFrom) out.push(`labelsFrom: ${sourceText(p.labelsFrom)}`);
    if (p.volumes.length) out.push(`volumes: ${JSON.stringify(p.volumes)}`);
    if (p.stopSignal) out.push(`stopSignal: ${JSON.stringify(p.stopSignal)}`);
    if (Object.keys(p.annotations).length) out.push(`annotations: ${JSON.stringify(p.annotations)}`);
    if (p.network !== "host") out.push(`network: ${JSON.stringify(p.network)}`);
    const binds = [
      ...p.binds.map((b) => `${JSON.stringify(b.target)}: ${b.readonly ? JSON.stringify(b.host) : `{ host: ${JSON.stringify(b.host)}, readonly: false }`}`),
      ...p.stageBinds.map((b) => `${JSON.stringify(b.target)}: ${sourceText(b.from)}`),
    ];
    if (binds.length) out.push(`binds: { ${binds.join(", ")} }`);
    if (p.tmpfs.length) out.push(`tmpfs: ${JSON.stringify(p.tmpfs)}`);
    if (Object.keys(p.caches).length) out.push(`caches: ${JSON.stringify(p.caches)}`);
    if (Object.keys(p.secrets).length) out.push(`secrets: ${JSON.stringify(p.secrets)}`);
    if (p.tags.length) out.push(`tags: ${JSON.stringify(p.tags)}`);
    if (p.platform !== undefined) out.push(`platform: ${JSON.stringify(p.platform)}`);
    return `{\n${out.map((l) => `  ${l},`).join("\n")}\n}`;
  }

  function baseText(b: Base): string {
    switch (b.kind) {
      case "stage":
        return names.get(b.stage) ?? JSON.stringify(b.stage.name);
      case "scratch":
        helpers.add("scratch");
        return "scratch()";
      case "image":
        helpers.add("image");
        return `image(${JSON.stringify(b.ref)}${b.platform ? `, { platform: ${JSON.stringify(b.platform)} }` : ""})`;
      case "oci":
        helpers.add("oci");
        return `oci(${JSON.stringify(b.layout)}${b.ref !== undefined ? `, ${JSON.stringify(b.ref)}` : ""})`;
      case "tarball":
        helpers.add("tarball");
        return `tarball(${sourceText(b.source)})`;
      case "debian":
        helpers.add("debian");
        return `debian(${JSON.stringify({ suite: b.suite, packages: b.packages, mirror: b.mirror, variant: b.variant })})`;
    }
  }

  function sourceText(s: Source): string {
    const opts = (extra: Record<string, unknown> = {}) => {
      const o: string[] = [];
      for (const [k, v] of Object.entries(extra)) if (v !== undefined) o.push(`${k}: ${JSON.stringify(v)}`);
      if (s.mode !== undefined) o.push(`mode: 0o${s.mode.toString(8)}`);
      if (s.owner !== undefined) o.push(`owner: ${JSON.stringify(s.owner)}`);
      return o.length ? `, { ${o.join(", ")} }` : "";
    };
    switch (s.kind) {
      case "local":
        helpers.add("local");
        return `local(${JSON.stringify(s.path)}${opts({ exclude: s.exclude.length ? s.exclude : undefined })})`;
      case "inline":
        helpers.add("inline");
        return `inline(${str(s.text)}${opts()})`;
      case "stage-path":
        return `${names.get(s.stage) ?? JSON.stringify(s.stage.name)}.path(${JSON.stringify(s.path)}${opts()})`;
      case "archive":
        helpers.add("archive");
        return `archive(${sourceText(s.source)})`;
      case "http":
        helpers.add("http");
        return `http(${JSON.stringify(s.url)}${opts({ sha256: s.sha256 })})`;
      case "git":
        helpers.add("git");
        return `git(${JSON.stringify(s.url)}${opts({ ref: s.ref === "HEAD" ? undefined : s.ref, keepGitDir: s.keepGitDir || undefined })})`;
      default:
        return JSON.stringify(s);
    }
  }
}

function healthcheckText(h: NonNullable<Stage["spec"]["healthcheck"]>): string {
  if (h.test[0] === "NONE") return `"none"`;
  const o: string[] = [`test: ${h.test[0] === "CMD-SHELL" ? JSON.stringify(h.test[1]) : JSON.stringify(h.test.slice(1))}`];
  const dur = (ns: number) => JSON.stringify(`${ns / 1e9}s`);
  if (h.interval !== undefined) o.push(`interval: ${dur(h.interval)}`);
  if (h.timeout !== undefined) o.push(`timeout: ${dur(h.timeout)}`);
  if (h.startPeriod !== undefined) o.push(`startPeriod: ${dur(h.startPeriod)}`);
  if (h.startInterval !== undefined) o.push(`startInterval: ${dur(h.startInterval)}`);
  if (h.retries !== undefined) o.push(`retries: ${h.retries}`);
  return `{ ${o.join(", ")} }`;
}

/** A script as a template literal when it has several lines (readable), else a quoted string. */
function str(s: string): string {
  if (!s.includes("\n")) return JSON.stringify(s);
  return "`" + s.replace(/\\/g, "\\\\").replace(/`/g, "\\`").replace(/\$\{/g, "\\${") + "`";
}

/** The `#` comment lines right above line `n` (1-based), directives like `# syntax=` left out. */
function commentsAbove(lines: string[], n: number): string[] {
  const out: string[] = [];
  for (let i = n - 2; i >= 0; i--) {
    const l = lines[i]!.trim();
    if (!l.startsWith("#")) break;
    if (/^#\s*(syntax|escape|check)\s*=/.test(l) && i < 3) continue;
    out.unshift(l.replace(/^#\s?/, ""));
  }
  return out;
}

function identifier(name: string, used: Set<string>): string {
  const parts = name.split(/[^A-Za-z0-9]+/).filter(Boolean);
  let id = parts.map((p, i) => (i === 0 ? p : p[0]!.toUpperCase() + p.slice(1))).join("");
  if (/^[0-9]/.test(id)) id = `s${id}`;
  if (RESERVED.has(id)) id = `${id}Stage`;
  let out = id;
  for (let n = 2; used.has(out); n++) out = `${id}${n}`;
  used.add(out);
  return out;
}

const RESERVED = new Set(["stage", "image", "scratch", "local", "inline", "oci", "tarball", "debian", "const", "let", "var", "export", "import", "default", "new", "class", "function", "return", "in", "of", "do", "if", "for", "while", "switch", "case", "delete", "void", "with", "yield", "this", "super", "null", "true", "false", "try", "catch", "finally", "throw", "typeof", "instanceof", "enum", "await"]);
