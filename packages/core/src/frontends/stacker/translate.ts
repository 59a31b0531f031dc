// Translates a stacker.yaml into ordinary stages, one per layer (stacker caches per layer too).
// Imports without `dest` are copied to /stacker for the layer's `run` and removed after it, as
// stacker mounts them there and leaves them out of the layer. A layer whose writable bind fills a
// host directory that a later layer adds with `overlay_dirs` also keeps a copy of it, which the
// later layer copies from: it then depends on that layer, and its key follows that layer's run.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, posix, relative, resolve, sep } from "node:path";
import { createRequire } from "node:module";
import type { Document } from "yaml";
import type { SourceLocation } from "../../errors.ts";
import type { Base, Source, Stage } from "../../model.ts";
import { image, oci, scratch, tarball } from "../../api/bases.ts";
import { http, local } from "../../api/sources.ts";
import { defineStage, type StageOptions } from "../../api/stage.ts";
import { canonicalPlatform, hostPlatform } from "../../platform.ts";
import { translateOnce, type Translated } from "../translate-once.ts";

// Loaded on first use, like the Dockerfile parser: a plan without stacker files never pays for it.
const requireLazily = createRequire(import.meta.url);
let yamlModule: typeof import("yaml") | undefined;
const yaml = () => (yamlModule ??= requireLazily("yaml") as typeof import("yaml"));

/** A stacker.yaml mistake at one line (0: not tied to a line). */
export class StackerError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

export interface StackerFile {
  /** Absolute path. */
  file: string;
  text: string;
}

export interface StackerInput {
  /** Reads a file (the stacker.yaml and its prerequisites); absolute path in. */
  read(file: string): string;
  file: string;
  /** Absolute directory of images.ts (local() and bind paths are written relative to it). */
  projectDir: string;
  substitutions: Readonly<Record<string, string>>;
  /** The environment `build_env_passthrough` picks from (the process's, when images.ts loads). */
  env: Readonly<Record<string, string | undefined>>;
}

interface Layer extends Translated<Stage> {
  name: string;
  file: string;
  display: string;
  line: number;
  spec: Record<string, unknown>;
  /** Host dir (absolute) → the path inside this layer's result where a copy of it is kept. */
  kept?: Map<string, string>;
}

const KEYS = [
  "from", "import", "imports", "run", "build_only", "binds", "overlay_dirs", "environment", "labels", "annotations",
  "entrypoint", "cmd", "full_command", "volumes", "working_dir", "runtime_user", "generate_labels", "build_env",
  "build_env_passthrough", "arch", "os",
];
const STACKER_SHELL = ["/bin/sh", "-x", "-e", "-c"];
const KEPT = "/.stacker-binds";
const LABELS_DIR = "/stacker/oci-labels";

export function translateStacker(input: StackerInput): { exported: Record<string, Stage>; stages: Stage[] } {
  const layers = new Map<string, Layer>();
  const top: Layer[] = [];
  const loaded = new Set<string>();

  const load = (file: string, isTop: boolean) => {
    if (loaded.has(file)) return;
    loaded.add(file);
    const display = displayOf(file);
    const text = substitute(input.read(file), input.substitutions, file);
    const { LineCounter, isMap, isScalar, parseDocument } = yaml();
    const lc = new LineCounter();
    // YAML 1.1, as stacker's Go parser reads it: a mode of 0644 is octal.
    const doc: Document = parseDocument(text, { lineCounter: lc, version: "1.1" });
    if (doc.errors.length) {
      const e = doc.errors[0]!;
      throw new StackerError(file, e.linePos?.[0].line ?? 0, e.message.split("\n")[0]!);
    }
    const root = doc.contents;
    if (!isMap(root)) throw new StackerError(file, 1, "a stacker file is a map of layer names to layer specs");
    for (const pair of root.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : "";
      const line = isScalar(pair.key) && pair.key.range ? lc.linePos(pair.key.range[0]).line : 0;
      const value = (pair.value as { toJSON?(): unknown } | null)?.toJSON?.() ?? null;
      if (key === "config") {
        const prereqs = (value as { prerequisites?: unknown } | null)?.prerequisites ?? [];
        if (!Array.isArray(prereqs) || prereqs.some((p) => typeof p !== "string")) throw new StackerError(file, line, "config.prerequisites must be a list of stacker file paths");
        for (const p of prereqs as string[]) load(resolve(dirname(file), p), false);
        continue;
      }
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw new StackerError(file, line, `layer ${key}: expected a map of keys like from, run, import`);
      if (layers.has(key)) throw new StackerError(file, line, `layer ${key} is defined twice (also in ${layers.get(key)!.display})`);
      const layer: Layer = { name: key, file, display, line, spec: value as Record<string, unknown> };
      for (const k of Object.keys(layer.spec)) if (!KEYS.includes(k)) throw new StackerError(file, line, `layer ${key}: unknown key "${k}"`);
      layers.set(key, layer);
      if (isTop) top.push(layer);
    }
  };
  load(input.file, true);

  // Writable binds whose host dir a later layer overlays: the binding layer keeps a copy.
  for (const l of layers.values()) {
    for (const b of binds(l)) {
      for (const other of layers.values()) {
        for (const o of overlayDirs(other)) {
          if (o.source === b.host || o.source.startsWith(b.host + sep)) {
            l.kept ??= new Map();
            if (!l.kept.has(b.host)) l.kept.set(b.host, `${KEPT}/${l.kept.size}`);
          }
        }
      }
    }
  }

  const exported: Record<string, Stage> = {};
  for (const l of top) {
    const s = stageOf(l);
    if (l.spec.build_only !== true) exported[l.name] = s;
  }
  return { exported, stages: [...layers.values()].flatMap((l) => (l.result ? [l.result] : [])) };

  function fail(l: Layer, message: string): never {
    throw new StackerError(l.file, l.line, `layer ${l.name}: ${message}`);
  }

  function displayOf(file: string): string {
    return relative(input.projectDir, file) || file;
  }

  function localPath(abs: string): string {
    const rel = relative(input.projectDir, abs);
    if (rel === "") return ".";
    if (isAbsolute(rel)) return abs;
    return rel.startsWith("..") ? rel : `./${rel}`;
  }

  function layerRef(l: Layer, name: string): Layer {
    const r = layers.get(name);
    if (!r) fail(l, `no layer named ${name} in ${l.display} or its prerequisites`);
    return r!;
  }

  function binds(l: Layer): { host: string; target: string }[] {
    const raw = l.spec.binds ?? [];
    if (!Array.isArray(raw)) fail(l, "binds must be a list like - /host/dir -> /target");
    return (raw as unknown[]).map((b) => {
      let host: string;
      let target: string;
      if (typeof b === "string") {
        const parts = b.split("->").map((p) => p.trim());
        if (parts.length > 2 || parts.some((p) => p === "")) fail(l, `bind ${JSON.stringify(b)}: write "host -> target"`);
        [host, target] = [parts[0]!, parts[1] ?? parts[0]!];
      } else if (typeof b === "object" && b !== null && typeof (b as { source?: unknown }).source === "string") {
        host = (b as { source: string }).source;
        target = typeof (b as { dest?: unknown }).dest === "string" ? (b as { dest: string }).dest : host;
      } else return fail(l, `bind ${JSON.stringify(b)}: write "host -> target"`);
      return { host: resolve(dirname(l.file), host), target: posix.resolve("/", target) };
    });
  }

  function overlayDirs(l: Layer): { source: string; dest: string }[] {
    const raw = l.spec.overlay_dirs ?? [];
    if (!Array.isArray(raw)) fail(l, "overlay_dirs must be a list of { source, dest }");
    return (raw as unknown[]).map((o) => {
      const x = o as { source?: unknown; dest?: unknown };
      if (typeof x !== "object" || x === null || typeof x.source !== "string") fail(l, `overlay_dirs entry ${JSON.stringify(o)}: needs a source`);
      return { source: resolve(dirname(l.file), x.source as string), dest: posix.resolve("/", typeof x.dest === "string" ? x.dest : "/") };
    });
  }

  function stageOf(l: Layer): Stage {
    return translateOnce(l, () => build(l), () => fail(l, "depends on itself"));
  }

  function build(l: Layer): Stage {
    const s = l.spec;
    const options: StageOptions = { from: fromOf(l) };
    const copy: Record<string, Source> = {};
    const put = (dest: string, src: Source) => {
      if (dest in copy) fail(l, `two imports write ${dest}`);
      copy[dest] = src;
    };
    let scratchImports = false;

    // stacker mounts `imports` at /stacker/imports, and the deprecated `import` at /stacker.
    if (s.import !== undefined && s.imports !== undefined) fail(l, "give imports or the deprecated import, not both");
    const importDir = s.imports !== undefined ? "/stacker/imports" : "/stacker";
    const imports = s.import ?? s.imports ?? [];
    for (const raw of Array.isArray(imports) ? imports : [imports]) {
      const spec = typeof raw === "string" ? { path: raw } : (raw as { path?: unknown; dest?: unknown; mode?: unknown; uid?: unknown; gid?: unknown; hash?: unknown });
      if (typeof spec.path !== "string") fail(l, `import ${JSON.stringify(raw)}: needs a path`);
      for (const k of Object.keys(spec)) if (!["path", "dest", "mode", "uid", "gid", "hash"].includes(k)) fail(l, `import ${spec.path}: unknown key "${k}" (path, dest, mode, uid, gid, hash)`);
      const path = spec.path as string;
      const mode = spec.mode === undefined ? undefined : typeof spec.mode === "number" ? spec.mode : parseInt(String(spec.mode), 8);
      if (mode !== undefined && !(mode >= 0 && mode <= 0o7777)) fail(l, `import ${path}: mode must be octal like 0644`);
      const owner = spec.uid !== undefined || spec.gid !== undefined ? `${Number(spec.uid ?? 0)}:${Number(spec.gid ?? spec.uid ?? 0)}` : undefined;
      const opts = { ...(mode !== undefined ? { mode } : {}), ...(owner ? { owner } : {}) };
      let source: Source;
      let name: string;
      const hash = spec.hash === undefined ? undefined : String(spec.hash).toLowerCase();
      if (hash !== undefined && !/^[a-f0-9]{64}$/.test(hash)) fail(l, `import ${path}: hash must be a sha256 (64 hex digits)`);
      const m = /^stacker:\/\/([^/]+)(\/.*)$/.exec(path);
      if (m) {
        if (hash !== undefined) fail(l, `import ${path}: a hash on a stacker:// import is not supported yet; check it in the layer that makes the file`);
        source = stageOf(layerRef(l, m[1]!)).path(m[2]!, opts);
        name = posix.basename(m[2]!);
      } else if (/^https?:\/\//i.test(path)) {
        // Downloaded when the layer builds; without a hash images.lock pins what the first build got.
        // stacker writes the download as a new file (0644), not with ADD's 0600.
        source = http(path, { mode: 0o644, ...opts, ...(hash ? { sha256: hash } : {}) });
        name = posix.basename(new URL(path).pathname) || "index.html";
      } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
        return fail(l, `import ${path}: only local paths, http(s):// and stacker:// imports are supported`);
      } else {
        const abs = resolve(dirname(l.file), path);
        if (!existsSync(abs)) fail(l, `import ${path}: ${abs} does not exist`);
        if (hash !== undefined) {
          if (!statSync(abs).isFile()) fail(l, `import ${path}: a hash on a directory import is not supported`);
          const have = createHash("sha256").update(readFileSync(abs)).digest("hex");
          if (have !== hash) fail(l, `import ${path}: its sha256 is ${have}, not the hash ${hash}`);
        }
        source = local(localPath(abs), opts);
        name = basename(abs);
      }
      if (typeof spec.dest === "string") {
        // A dest ending in "/" is a directory the import goes into; anything else is the path itself.
        put(spec.dest.endsWith("/") ? posix.resolve("/", spec.dest) + "/" : posix.resolve("/", spec.dest), source);
      } else {
        put(`${importDir}/${name}`, source);
        scratchImports = true;
      }
    }
    for (const o of overlayDirs(l)) {
      const keeper = [...layers.values()].find((x) => x !== l && [...(x.kept?.keys() ?? [])].some((h) => o.source === h || o.source.startsWith(h + sep)));
      if (keeper) {
        const host = [...keeper.kept!.keys()].find((h) => o.source === h || o.source.startsWith(h + sep))!;
        put(o.dest, stageOf(keeper).path(keeper.kept!.get(host)! + o.source.slice(host.length).split(sep).join("/")));
      } else {
        if (!existsSync(o.source) || !statSync(o.source).isDirectory()) fail(l, `overlay_dirs: ${o.source} is not a directory`);
        put(o.dest, local(localPath(o.source)));
      }
    }
    if (Object.keys(copy).length) options.copy = copy;

    const run = s.run === undefined ? [] : Array.isArray(s.run) ? s.run : [s.run];
    if (run.some((r) => typeof r !== "string")) fail(l, "run must be a script or a list of lines");
    const scripts: string[] = [];
    const envLines = buildEnvLines(l);
    if (run.length) scripts.push(envLines + (run as string[]).join("\n"));
    for (const [host, kept] of l.kept ?? []) {
      const b = binds(l).find((x) => x.host === host)!;
      scripts.push(`mkdir -p ${KEPT} && cp -a ${b.target} ${kept}`);
    }
    if (scratchImports && scripts.length) scripts.push("rm -rf /stacker");
    if (scratchImports && !scripts.length) fail(l, "imports without dest are only seen by run, and this layer has no run; give them a dest");
    if (scripts.length) {
      options.run = scripts;
      options.shell = STACKER_SHELL;
    }
    const bs = binds(l);
    if (bs.length) options.binds = Object.fromEntries(bs.map((b) => [b.target, { host: localPath(b.host), readonly: false }]));

    const strRecord = (k: string): Record<string, string> | undefined => {
      const v = s[k];
      if (v === undefined) return undefined;
      if (typeof v !== "object" || v === null || Array.isArray(v)) fail(l, `${k} must be a map`);
      return Object.fromEntries(Object.entries(v as object).map(([a, b]) => [a, String(b)]));
    };
    const env = strRecord("environment");
    if (env) options.env = env;
    const labels = strRecord("labels");
    if (labels) options.labels = labels;
    const annotations = strRecord("annotations");
    if (annotations) options.annotations = annotations;
    const command = (k: string): string[] | undefined => {
      const v = s[k];
      if (v === undefined || v === null) return undefined;
      if (typeof v === "string") return splitWords(v);
      if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
      return fail(l, `${k} must be a string or a list of strings`);
    };
    const entrypoint = command("entrypoint");
    const cmd = command("cmd");
    const full = command("full_command");
    if (full && (entrypoint || cmd)) fail(l, "full_command replaces entrypoint and cmd: give either");
    if (full) {
      options.entrypoint = full;
      options.cmd = [];
    } else {
      if (entrypoint) options.entrypoint = entrypoint;
      if (cmd) options.cmd = cmd;
    }
    if (s.volumes !== undefined) {
      if (!Array.isArray(s.volumes) || s.volumes.some((v) => typeof v !== "string")) fail(l, "volumes must be a list of paths");
      options.volumes = (s.volumes as string[]).map((v) => posix.resolve("/", v));
    }
    if (s.working_dir !== undefined) options.workdir = posix.resolve("/", String(s.working_dir));
    if (s.runtime_user !== undefined) options.user = String(s.runtime_user);
    const platform = platformOf(l);
    if (platform) options.platform = platform;
    if (s.build_only !== undefined && typeof s.build_only !== "boolean") fail(l, "build_only must be true or false");

    const at: SourceLocation = { file: l.file, line: l.line, column: 1 };
    const origin = { file: l.display, line: l.line, instruction: `layer ${l.name}` };
    if (s.generate_labels === undefined) return defineStage(l.name, options, at, origin);

    // generate_labels runs on the finished layer and only what it writes to /stacker/oci-labels
    // counts: its run is a stage of its own whose layer no image gets, and the layer's image takes
    // its labels from that directory (the layer's own labels win, as in stacker).
    const gl = Array.isArray(s.generate_labels) ? s.generate_labels : [s.generate_labels];
    if (gl.length === 0 || gl.some((x) => typeof x !== "string")) fail(l, "generate_labels must be a script or a list of lines");
    const pin = platform ? { platform } : {};
    const content = defineStage(`${l.name}.content`, options, at, origin);
    const labeller = defineStage(`${l.name}.generate-labels`, { from: content, run: `${envLines}mkdir -p ${LABELS_DIR}\n${(gl as string[]).join("\n")}`, shell: STACKER_SHELL, ...pin }, at, origin);
    return defineStage(l.name, { from: content, labelsFrom: labeller.path(LABELS_DIR), ...(labels ? { labels } : {}), ...pin }, at, origin);
  }

  /**
   * What stacker puts in a run's environment besides the image's: STACKER_LAYER_NAME, the host
   * variables build_env_passthrough matches (each pattern matches a whole name) and build_env,
   * which wins. They are exported by the script, so they are in the layer's key but not the image.
   * Without build_env_passthrough nothing comes from the host (stacker passes its proxy variables,
   * TERM and SOURCE_DATE_EPOCH; mstage keeps a build independent of the shell it was started in).
   */
  function buildEnvLines(l: Layer): string {
    const vars: Record<string, string> = { STACKER_LAYER_NAME: l.name };
    const pass = l.spec.build_env_passthrough;
    if (pass !== undefined) {
      if (!Array.isArray(pass) || pass.some((p) => typeof p !== "string")) fail(l, `build_env_passthrough must be a list of patterns like ["HTTPS?_PROXY"]`);
      const res = (pass as string[]).map((p) => {
        try {
          return new RegExp(`^(?:${p})$`);
        } catch {
          return fail(l, `build_env_passthrough: ${JSON.stringify(p)} is not a regular expression`);
        }
      });
      for (const name of Object.keys(input.env).sort()) {
        const v = input.env[name];
        if (v !== undefined && res.some((r) => r.test(name))) vars[name] = v;
      }
    }
    const own = l.spec.build_env;
    if (own !== undefined) {
      if (typeof own !== "object" || own === null || Array.isArray(own)) fail(l, "build_env must be a map of variable names to values");
      for (const [k, v] of Object.entries(own as object)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) fail(l, `build_env: ${JSON.stringify(k)} is not a variable name`);
        vars[k] = String(v);
      }
    }
    return `export ${Object.entries(vars).map(([k, v]) => `${k}=${shellQuote(v)}`).join(" ")}\n`;
  }

  /** stacker's `os` and `arch`: the platform the layer is built for (its base's, its run's, its config's). */
  function platformOf(l: Layer): string | undefined {
    const { os, arch } = l.spec;
    if (os === undefined && arch === undefined) return undefined;
    if ((os !== undefined && typeof os !== "string") || (arch !== undefined && typeof arch !== "string")) fail(l, "os and arch must be strings like linux and arm64");
    const host = hostPlatform();
    try {
      if ([os, arch].some((x) => x !== undefined && !/^[a-z0-9_]+$/i.test(x as string))) throw new Error("not a platform");
      return canonicalPlatform(`${os ?? host.os}/${arch ?? host.architecture}`);
    } catch {
      return fail(l, `os ${JSON.stringify(os ?? host.os)} and arch ${JSON.stringify(arch ?? host.architecture)} are not a platform like linux/arm64`);
    }
  }

  function fromOf(l: Layer): Base | Stage {
    const f = l.spec.from as { type?: unknown; url?: unknown; tag?: unknown } | undefined;
    if (typeof f !== "object" || f === null) return fail(l, "from is required, like from: { type: docker, url: docker://alpine:3.20 }");
    const url = typeof f.url === "string" ? f.url : undefined;
    switch (f.type) {
      case "docker": {
        if (!url) fail(l, "from: type docker needs a url like docker://alpine:3.20");
        const ref = url!.replace(/^docker:\/\//, "");
        if (!/^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$/.test(ref)) fail(l, `from: ${url} is not an image reference`);
        return image(ref);
      }
      case "oci": {
        if (!url) fail(l, "from: type oci needs a url like ./oci:tag");
        const m = /^(.*?)(?::([^:/]+))?$/.exec(url!.replace(/^oci:/, ""))!;
        return oci(localPath(resolve(dirname(l.file), m[1]!)), m[2]);
      }
      case "tar": {
        if (!url) fail(l, "from: type tar needs a url (a path, or stacker://layer/path)");
        const m = /^stacker:\/\/([^/]+)(\/.*)$/.exec(url!);
        if (m) return tarball(stageOf(layerRef(l, m[1]!)).path(m[2]!));
        if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url!)) fail(l, `from: ${url}: downloading a tarball is not supported yet`);
        return tarball(local(localPath(resolve(dirname(l.file), url!))));
      }
      case "built": {
        if (typeof f.tag !== "string") fail(l, "from: type built needs the tag of another layer");
        return stageOf(layerRef(l, f.tag as string));
      }
      case "scratch":
        return scratch();
      default:
        return fail(l, `from: unknown type ${JSON.stringify(f.type)} (docker, oci, tar, built or scratch)`);
    }
  }
}

/** `${{VAR}}` and `${{VAR:default}}`, as stacker substitutes them in the file's text. */
export function substitute(text: string, subs: Readonly<Record<string, string>>, file: string): string {
  const lines = text.split("\n");
  return lines
    .map((line, i) =>
      line.replace(/\$\{\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}\}/g, (_, name: string, def: string | undefined) => {
        const v = subs[name] ?? def;
        if (v === undefined) throw new StackerError(file, i + 1, `\${{${name}}} has no value: pass substitutions: { ${name}: "…" } or write \${{${name}:default}}`);
        return v;
      }),
    )
    .join("\n");
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A command string split like a shell would split words (quotes respected). */
function splitWords(s: string): string[] {
  const out: string[] = [];
  for (const m of s.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : (m[2] ?? m[3]!));
  return out;
}
