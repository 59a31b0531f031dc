// Translates a parsed Dockerfile into ordinary stages: one stage per filesystem-changing
// instruction (RUN, COPY, ADD), chained with `from: previousStep`, so an edit re-runs only that
// instruction and the ones after it, as in Docker. ENV, WORKDIR, USER and the config-only
// instructions ride on the next step (or on a last, layer-less stage). Anything mstage cannot
// build exactly as Docker would is an error naming the line, never a silent skip.
import { existsSync, openSync, readSync, readdirSync, closeSync, statSync } from "node:fs";
import { isAbsolute, posix, relative, resolve } from "node:path";
import type { SourceLocation } from "../../errors.ts";
import type { Base, Source, Stage, StageOrigin, StagePathSource } from "../../model.ts";
import { image, oci, scratch } from "../../api/bases.ts";
import { archive, git, http, inline, isGitUrl, local } from "../../api/sources.ts";
import { defineStage, type StageOptions } from "../../api/stage.ts";
import { canonicalPlatform } from "../../platform.ts";
import { globRegExp, isGlob } from "../../local/walk.ts";
import { translateOnce, type Translated } from "../translate-once.ts";
import { DockerfileError, type Instruction, type ParsedDockerfile } from "./parse.ts";
import { WordError, expandWord, expandWords, rawWords, type Lookup } from "./words.ts";

export interface TranslateInput {
  parsed: ParsedDockerfile;
  /** Absolute path of the Dockerfile (errors point at its lines). */
  file: string;
  /** The Dockerfile as reasons show it: "Dockerfile", "app/Dockerfile". */
  display: string;
  name: string;
  target?: string;
  args: Readonly<Record<string, string>>;
  /** Absolute build context directory. */
  contextDir: string;
  /** Absolute directory of images.ts: local() paths are written relative to it. */
  projectDir: string;
  /** The target platform (TARGETPLATFORM), e.g. "linux/arm64"; canonical spelling. */
  platform: string;
  /** The build machine's platform (BUILDPLATFORM). */
  buildPlatform: string;
  /** dockerfile() was given a platform: every stage is pinned to it (or to its FROM --platform). */
  pinned: boolean;
  /** .dockerignore patterns of the context. */
  ignore: readonly string[];
  secrets: Readonly<Record<string, { env: string } | { file: string }>>;
  tags: readonly string[];
}

interface Block extends Translated<Chain> {
  index: number;
  /** `AS name`, lowercased as Docker compares it. */
  alias?: string;
  from: Instruction;
  body: Instruction[];
  /** The platform its steps are pinned to: FROM --platform, the parent stage's, or dockerfile()'s. */
  platform?: string;
}

/** What a chain of steps leaves for the instructions after it and for stages built on it. */
interface Chain {
  stage: Stage | undefined;
  base: Base | Stage;
  env: Map<string, string>;
  /** Every variable the image's environment can have is known: the chain starts at scratch. */
  envKnown: boolean;
  workdir?: string;
  shell: string[];
}

const PLATFORM_ARGS = ["TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT", "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT"];
const DEFAULT_SHELL = ["/bin/sh", "-c"];

export function translateDockerfile(t: TranslateInput): Stage {
  const { parsed } = t;
  const fail = (line: number, message: string): never => {
    throw new DockerfileError(line, message);
  };

  // ARGs before the first FROM are the "meta" args: visible in FROM lines only.
  const meta = new Map<string, string | undefined>(platformArgs(t.platform, t.buildPlatform));
  const blocks: Block[] = [];
  const declared = new Set<string>(PLATFORM_ARGS);
  for (const ins of parsed.instructions) {
    if (ins.keyword === "FROM") {
      blocks.push({ index: blocks.length, from: ins, body: [] });
      continue;
    }
    if (ins.keyword === "ARG") for (const [k] of argPairs(ins, () => undefined)) declared.add(k);
    const current = blocks[blocks.length - 1];
    if (current) current.body.push(ins);
    else if (ins.keyword === "ARG") {
      for (const [k, v] of argPairs(ins, lookupIn(meta))) meta.set(k, t.args[k] ?? v ?? meta.get(k));
    } else fail(ins.line, `${ins.keyword} before the first FROM: only ARG may come before FROM`);
  }
  if (blocks.length === 0) fail(1, "no FROM instruction: a Dockerfile starts from a base image (FROM …) or FROM scratch");
  for (const b of blocks) {
    const words = expandOrFail(b.from, () => rawWords(b.from.args, parsed.escape));
    if (words.length === 3 && words[1]!.toLowerCase() === "as") b.alias = words[2]!.toLowerCase();
    else if (words.length !== 1) fail(b.from.line, `FROM takes an image and an optional "AS name", got ${JSON.stringify(b.from.args)}`);
  }
  for (const k of Object.keys(t.args)) {
    if (!declared.has(k)) throw new DockerfileError(0, `args.${k} is not declared by any ARG in ${t.display}`);
  }

  const target = t.target === undefined ? blocks[blocks.length - 1]! : blocks.find((b) => b.alias === t.target!.toLowerCase());
  if (!target) throw new DockerfileError(0, `target "${t.target}" is not a stage of ${t.display}; its stages: ${blocks.map((b) => b.alias ?? String(b.index)).join(", ")}`);
  return chainOf(target).stage!;

  function stageName(b: Block, n?: number): string {
    const label = b.alias && /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(b.alias) ? b.alias : String(b.index);
    if (b === target && n === undefined) return t.name;
    return n === undefined ? `${t.name}.${label}` : `${t.name}.${label}.${n}`;
  }

  function located(line: number): SourceLocation {
    return { file: t.file, line, column: 1 };
  }

  function expandOrFail<T>(ins: Instruction, f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof WordError) return fail(ins.line, e.message);
      throw e;
    }
  }

  /** A stage of this file named in FROM or COPY --from: by alias or index. */
  function blockRef(ref: string, ins: Instruction, allowImage: boolean): Block | undefined {
    const lower = ref.toLowerCase();
    const byAlias = blocks.find((b) => b.alias === lower);
    if (byAlias) return byAlias;
    if (/^\d+$/.test(ref)) {
      const b = blocks[Number(ref)];
      if (!b) fail(ins.line, `there is no stage ${ref}: stages are numbered from 0 and this file has ${blocks.length}`);
      return b;
    }
    if (!allowImage) fail(ins.line, `"${ref}" is not a stage of this Dockerfile`);
    return undefined;
  }

  function chainOf(b: Block): Chain {
    return translateOnce(b, () => translateBlock(b), () => fail(b.from.line, `stage ${b.alias ?? b.index} depends on itself`));
  }

  function translateBlock(b: Block): Chain {
    const fromIns = b.from;
    let fromPlatform: string | undefined;
    for (const f of fromIns.flags) {
      if (f.name !== "platform") fail(fromIns.line, `FROM --${f.name} is not a FROM flag`);
      const p = expandOrFail(fromIns, () => expandWord(f.value ?? "", lookupIn(meta), { escape: parsed.escape }));
      fromPlatform = platformOrFail(fromIns, p);
    }
    const ref = expandOrFail(fromIns, () => expandWords(fromIns.args, lookupIn(meta), { escape: parsed.escape }))[0]!;
    let chain: Chain;
    const parent = ref.toLowerCase() === "scratch" ? undefined : blocks.slice(0, b.index).find((x) => x.alias === ref.toLowerCase());
    // BuildKit: a stage built FROM another stage runs on that stage's platform; the others on the
    // target platform. Unpinned (no platform given), a stage follows whoever reads it, as stage() does.
    if (parent) chainOf(parent);
    b.platform = fromPlatform ?? parent?.platform ?? (t.pinned ? t.platform : undefined);
    const pin: Pick<StageOptions, "platform"> = b.platform !== undefined ? { platform: b.platform } : {};
    if (ref.toLowerCase() === "scratch") {
      chain = { stage: undefined, base: scratch(), env: new Map(), envKnown: true, shell: DEFAULT_SHELL };
    } else if (parent) {
      const up = chainOf(parent);
      chain = { ...up, stage: up.stage, base: up.stage ?? up.base, env: new Map(up.env) };
    } else {
      chain = { stage: undefined, base: imageBase(ref, fromIns), env: new Map(), envKnown: false, shell: DEFAULT_SHELL };
    }

    const args = new Map<string, string | undefined>();
    let pending = emptyPending();
    let steps = 0;
    let cmdSet = false;
    const onBuild: string[] = [];
    let cmd: string[] | undefined;
    let last: Instruction = fromIns;

    // Build args an instruction's words used: plan names them when their value changes.
    let usedArgs: Record<string, string> = {};
    const lookup: Lookup = (name) => {
      if (chain.env.has(name)) return chain.env.get(name);
      if (args.has(name)) {
        const v = args.get(name);
        if (v !== undefined) usedArgs[name] = v;
        return v;
      }
      if (!chain.envKnown) throw new WordError(`$${name} is not set by an ARG or ENV of this Dockerfile; it may come from the base image's environment, which mstage does not read when it loads the config: set it with ARG or ENV`);
      return undefined;
    };
    const words = (ins: Instruction, text: string) => expandOrFail(ins, () => expandWords(text, lookup, { escape: parsed.escape }));
    const word = (ins: Instruction, text: string) => expandOrFail(ins, () => expandWord(text, lookup, { escape: parsed.escape }));
    const scopeArgs = (): Record<string, string> => {
      const out: Record<string, string> = {};
      for (const [k, v] of args) if (v !== undefined && !chain.env.has(k)) out[k] = v;
      return out;
    };

    const step = (ins: Instruction, spec: Omit<StageOptions, "from">, origin: StageOrigin) => {
      steps++;
      const options: StageOptions = { from: chain.stage ?? chain.base, ...pendingOptions(pending), ...spec, ...pin };
      chain = { ...chain, stage: defineStage(stageName(b, steps), options, located(ins.line), origin) };
      pending = emptyPending();
    };

    for (const ins of b.body) {
      last = ins;
      usedArgs = {};
      const noFlags = () => {
        if (ins.flags.length) fail(ins.line, `${ins.keyword} --${ins.flags[0]!.name} is not supported`);
      };
      switch (ins.keyword) {
        case "ARG": {
          for (const [k, v] of argPairs(ins, lookup, parsed.escape)) {
            const value = t.args[k] ?? v ?? meta.get(k);
            args.set(k, value);
          }
          break;
        }
        case "ENV": {
          const pairs = kvPairs(ins, lookup, parsed.escape, true);
          for (const [k, v] of pairs) {
            if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) fail(ins.line, `ENV ${k}: not a valid variable name`);
            chain.env.set(k, v);
            pending.env[k] = v;
          }
          break;
        }
        case "LABEL":
          for (const [k, v] of kvPairs(ins, lookup, parsed.escape, false)) pending.labels[k] = v;
          break;
        case "WORKDIR": {
          const w = word(ins, ins.args.trim());
          const abs = posix.resolve(chain.workdir ?? "/", w);
          chain.workdir = abs;
          pending.workdir = abs;
          // WORKDIR makes its directory, owned by the USER in effect then: a step of its own.
          step(ins, {}, { file: t.display, line: ins.line, instruction: "WORKDIR", args: usedArgs });
          break;
        }
        case "USER":
          pending.user = word(ins, ins.args.trim());
          break;
        case "EXPOSE":
          for (const p of words(ins, ins.args)) {
            if (!/^\d+(-\d+)?(\/(tcp|udp|sctp))?$/i.test(p)) fail(ins.line, `EXPOSE ${p}: not a port like 8080, 53/udp or 8000-8010/tcp`);
            pending.expose.push(p.toLowerCase());
          }
          break;
        case "VOLUME":
          for (const v of ins.json ?? words(ins, ins.args)) pending.volumes.push(posix.resolve("/", v));
          break;
        case "STOPSIGNAL":
          pending.stopSignal = word(ins, ins.args.trim());
          break;
        case "SHELL":
          if (!ins.json || ins.json.length === 0) fail(ins.line, `SHELL needs the JSON form, like SHELL ["/bin/bash", "-c"]`);
          chain.shell = ins.json!;
          break;
        case "CMD":
          cmd = ins.json ?? [...chain.shell, ins.args];
          cmdSet = true;
          pending.cmd = cmd;
          break;
        case "ENTRYPOINT":
          pending.entrypoint = ins.json ?? [...chain.shell, ins.args];
          // Docker: ENTRYPOINT drops a CMD inherited from the base, not one set in this stage.
          if (cmdSet) pending.cmd = cmd;
          break;
        case "RUN":
          step(ins, runSpec(ins), { file: t.display, line: ins.line, instruction: "RUN", args: scopeArgs() });
          break;
        case "COPY":
        case "ADD":
          step(ins, { copy: copySpec(ins) }, { file: t.display, line: ins.line, instruction: ins.keyword, args: usedArgs });
          break;
        case "HEALTHCHECK":
          pending.healthcheck = healthcheckOf(ins);
          break;
        case "ONBUILD":
          // Recorded in the image for images built FROM it, as Docker does; nothing runs here.
          if (/^\s*(ONBUILD|FROM|MAINTAINER)\b/i.test(ins.args)) fail(ins.line, `ONBUILD ${ins.args.split(/\s/)[0]} is not allowed`);
          onBuild.push(ins.args.trim());
          pending.onBuild = [...onBuild];
          break;
        case "MAINTAINER":
          noFlags();
          fail(ins.line, `MAINTAINER is deprecated and not supported: use LABEL org.opencontainers.image.authors="…"`);
          break;
        default:
          fail(ins.line, `${ins.keyword} is not supported`);
      }
    }
    const isTarget = b === target;
    if (hasPending(pending) || !chain.stage || isTarget) {
      // Trailing config (or a target without steps): one stage without a layer carries it.
      const needsOwn = hasPending(pending) || !chain.stage || (isTarget && chain.stage.name !== t.name);
      if (needsOwn) {
        const options: StageOptions = { from: chain.stage ?? chain.base, ...pendingOptions(pending), ...(isTarget && t.tags.length ? { tags: [...t.tags] } : {}), ...pin };
        chain = { ...chain, stage: defineStage(stageName(b), options, located(last.line), { file: t.display, line: last.line, instruction: last.keyword }) };
      }
    }
    return chain;

    function healthcheckOf(ins: Instruction): NonNullable<StageOptions["healthcheck"]> {
      const words = ins.command.trim();
      if (/^none$/i.test(words)) {
        if (ins.flags.length) fail(ins.line, "HEALTHCHECK NONE takes no flags");
        return "none";
      }
      const m = /^CMD\s+([\s\S]+)$/i.exec(ins.args.trim());
      if (!m) fail(ins.line, "HEALTHCHECK needs CMD <command> or NONE");
      const rest = m![1]!.trim();
      let test: string | string[] = rest;
      if (rest.startsWith("[")) {
        try {
          const v: unknown = JSON.parse(rest);
          if (Array.isArray(v) && v.every((x) => typeof x === "string")) test = v as string[];
        } catch {
          // shell form
        }
      }
      const out: { test: string | string[]; interval?: string; timeout?: string; startPeriod?: string; startInterval?: string; retries?: number } = { test };
      const names: Record<string, "interval" | "timeout" | "startPeriod" | "startInterval"> = { interval: "interval", timeout: "timeout", "start-period": "startPeriod", "start-interval": "startInterval" };
      for (const f of ins.flags) {
        const v = f.value ?? "";
        if (f.name === "retries") {
          if (!/^\d+$/.test(v)) fail(ins.line, `HEALTHCHECK --retries=${v}: a whole number`);
          out.retries = Number(v);
        } else if (names[f.name]) out[names[f.name]!] = v;
        else fail(ins.line, `HEALTHCHECK --${f.name} is not a HEALTHCHECK flag`);
      }
      return out;
    }

    function runSpec(ins: Instruction): Omit<StageOptions, "from"> {
      const out: Omit<StageOptions, "from"> & RunMounts = { caches: {}, secrets: {}, tmpfs: [], binds: {} };
      for (const f of ins.flags) {
        if (f.name === "network") {
          const v = f.value ?? "";
          if (v === "none" || v === "host") out.network = v;
          else if (v !== "default") fail(ins.line, `RUN --network=${v}: use none, host or default`);
        } else if (f.name === "mount") mount(ins, f.value ?? "", out);
        else fail(ins.line, `RUN --${f.name} is not supported`);
      }
      const argsNow = scopeArgs();
      const names = Object.keys(argsNow);
      if (ins.json) {
        const argv = ins.json;
        if (argv.length === 0) fail(ins.line, "RUN [] has no command");
        // mstage runs [...shell, script]: the exec form's argv is that, split before its last word.
        const env = names.length ? ["/usr/bin/env", ...names.map((k) => `${k}=${argsNow[k]}`)] : [];
        if (argv.length === 1) return { ...out, shell: env.length ? env : ["/usr/bin/env"], run: argv[0]! };
        return { ...out, shell: [...env, ...argv.slice(0, -1)], run: argv[argv.length - 1]! };
      }
      // Shell form; a RUN that is only a heredoc runs the heredoc's body.
      let script = ins.heredocs.length === 1 && /^<<-?["']?[A-Za-z0-9_.-]+["']?$/.test(ins.command.trim()) ? ins.heredocs[0]!.body : ins.args;
      if (script.startsWith("#!")) fail(ins.line, "RUN with a heredoc that starts with #! is not supported yet");
      if (names.length) script = `export ${names.map((k) => `${k}=${shellQuote(argsNow[k]!)}`).join(" ")}\n${script}`;
      return { ...out, shell: [...chain.shell], run: script };
    }

    function mount(ins: Instruction, value: string, out: RunMounts) {
      const opts = new Map<string, string>();
      for (const part of value.split(",")) {
        const eq = part.indexOf("=");
        opts.set(eq < 0 ? part : part.slice(0, eq), eq < 0 ? "true" : part.slice(eq + 1));
      }
      const type = opts.get("type") ?? "bind";
      const targetPath = opts.get("target") ?? opts.get("dst") ?? opts.get("destination");
      const allowed = (keys: string[]) => {
        for (const k of opts.keys()) if (!keys.includes(k)) fail(ins.line, `RUN --mount=type=${type}: option "${k}" is not supported yet`);
      };
      if (type === "cache") {
        allowed(["type", "target", "dst", "destination", "id", "sharing"]);
        if (!targetPath) fail(ins.line, "RUN --mount=type=cache needs target=");
        const abs = posix.resolve(chain.workdir ?? "/", targetPath!);
        out.caches[abs] = sanitizeId(opts.get("id") ?? abs);
      } else if (type === "secret") {
        allowed(["type", "id", "target", "dst", "destination", "required"]);
        const id = opts.get("id") ?? (targetPath ? posix.basename(targetPath) : undefined);
        if (!id) fail(ins.line, "RUN --mount=type=secret needs id=");
        if (targetPath && posix.resolve("/", targetPath) !== `/run/secrets/${id}`) fail(ins.line, `RUN --mount=type=secret: only the default target /run/secrets/${id} is supported`);
        const s = t.secrets[id!];
        if (!s) fail(ins.line, `RUN --mount=type=secret,id=${id}: give the secret to dockerfile(), e.g. secrets: { ${JSON.stringify(id)}: { env: "MY_SECRET" } }`);
        out.secrets[id!] = s!;
      } else if (type === "tmpfs") {
        allowed(["type", "target", "dst", "destination"]);
        if (!targetPath) fail(ins.line, "RUN --mount=type=tmpfs needs target=");
        out.tmpfs.push(posix.resolve(chain.workdir ?? "/", targetPath!));
      } else if (type === "bind") {
        // Read-only, as BuildKit's default; its writes (rw) would be thrown away there but kept here.
        allowed(["type", "target", "dst", "destination", "source", "src", "from"]);
        if (!targetPath) fail(ins.line, "RUN --mount=type=bind needs target=");
        const target = posix.resolve(chain.workdir ?? "/", targetPath!);
        const source = opts.get("source") ?? opts.get("src") ?? "/";
        const from = opts.get("from");
        if (target in out.binds) fail(ins.line, `RUN --mount: two mounts at ${target}`);
        if (from !== undefined) {
          const ref = blockRef(from, ins, true);
          const st = ref ? chainOf(ref).stage! : defineStage(`${stageName(b)}.mount-l${ins.line}`, { from: imageBase(from, ins) }, located(ins.line));
          out.binds[target] = st.path(posix.resolve("/", source));
        } else {
          const rel = posix.normalize(source.replace(/^\/+/, ""));
          if (rel === ".." || rel.startsWith("../")) fail(ins.line, `RUN --mount=type=bind,source=${source}: outside the build context`);
          out.binds[target] = localPath(resolve(t.contextDir, rel));
        }
      } else fail(ins.line, `RUN --mount=type=${type} is not supported`);
    }

    function copySpec(ins: Instruction): Record<string, Source> {
      const add = ins.keyword === "ADD";
      let fromRef: string | undefined;
      let owner: string | undefined;
      let mode: number | undefined;
      let parents = false;
      let checksum: string | undefined;
      let keepGitDir = false;
      const exclude: string[] = [];
      for (const f of ins.flags) {
        const v = f.value ?? "";
        if (f.name === "from" && !add) fromRef = word(ins, v);
        else if (f.name === "checksum" && add) checksum = word(ins, v);
        else if (f.name === "keep-git-dir" && add) {
          if (f.value !== undefined && f.value !== "true" && f.value !== "false") fail(ins.line, `ADD --keep-git-dir=${f.value}: true or false`);
          keepGitDir = f.value !== "false";
        }
        else if (f.name === "chown") owner = ownerOf(ins, word(ins, v));
        else if (f.name === "chmod") {
          if (!/^[0-7]{3,4}$/.test(v)) fail(ins.line, `${ins.keyword} --chmod=${v}: only octal modes like 0755 are supported`);
          mode = parseInt(v, 8);
        } else if (f.name === "link") {
          // --link changes how BuildKit stacks the layer, not the files it holds.
        } else if (f.name === "exclude" && !add) exclude.push(word(ins, v));
        else if (f.name === "parents" && !add) {
          if (f.value !== undefined && f.value !== "true" && f.value !== "false") fail(ins.line, `COPY --parents=${f.value}: true or false`);
          parents = f.value !== "false";
        }
        else fail(ins.line, `${ins.keyword} --${f.name} is not supported yet`);
      }
      const heredocNames = new Set(ins.heredocs.map((h) => h.name));
      const all = ins.json ?? words(ins, ins.command);
      if (all.length < 2) fail(ins.line, `${ins.keyword} requires at least two arguments: source(s) and destination`);
      const sources = all.slice(0, -1);
      let dest = all[all.length - 1]!;
      // --parents keeps each source's path (below a "/./" in it, if any) under the destination directory.
      const dirDest = dest.endsWith("/") || dest === "." || sources.length > 1 || parents;
      if (sources.length > 1 && !dest.endsWith("/")) fail(ins.line, `${ins.keyword} with several sources needs a destination ending in "/"`);
      dest = posix.resolve(chain.workdir ?? "/", dest) + (dirDest ? "/" : "");
      if (dest === "//") dest = "/";
      const fileOpts = { ...(mode !== undefined ? { mode } : {}), ...(owner !== undefined ? { owner } : {}) };

      let fromStage: Stage | undefined;
      if (fromRef !== undefined) {
        const ref = blockRef(fromRef, ins, true);
        if (ref) {
          if (ref === b) fail(ins.line, `${ins.keyword} --from=${fromRef} names the stage it is in`);
          fromStage = chainOf(ref).stage!;
        } else {
          fromStage = defineStage(`${stageName(b)}.from-l${ins.line}`, { from: imageBase(fromRef, ins) }, located(ins.line));
        }
      }

      const copy: Record<string, Source> = {};
      const put = (to: string, s: Source) => {
        if (to in copy) fail(ins.line, `${ins.keyword}: several sources into ${to} are not supported yet (they come with issue 10)`);
        copy[to] = s;
      };
      for (const src of sources) {
        const m = /^<<-?["']?([A-Za-z0-9_.-]+)["']?$/.exec(src);
        if (m && heredocNames.has(m[1]!) && !fromStage) {
          const h = ins.heredocs.find((x) => x.name === m[1])!;
          const text = h.expand ? expandOrFail(ins, () => expandWord(h.body, lookup, { escape: parsed.escape, raw: true })) : h.body;
          put(dirDest ? posix.join(dest, h.name) : dest, inline(text, fileOpts));
          continue;
        }
        const glob = /[*?[]/.test(src);
        if (parents) {
          copyParents(src, glob);
          continue;
        }
        if (fromStage) {
          const p = posix.resolve("/", src);
          put(dest, fromStage.path(p, fileOpts));
          continue;
        }
        if (/^[a-z][a-z0-9+.-]*:\/\//i.test(src) || /^[A-Za-z0-9_.-]+@[A-Za-z0-9.-]+:/.test(src)) {
          if (!add) fail(ins.line, `COPY ${src}: COPY takes no URLs; ADD downloads them`);
          addRemote(src);
          continue;
        }
        const rel = posix.normalize(src.replace(/^\/+/, ""));
        if (rel === ".." || rel.startsWith("../")) fail(ins.line, `${ins.keyword} ${src}: the source is outside the build context`);
        const abs = resolve(t.contextDir, rel);
        if (glob) {
          // local() matches wildcards as Docker does (each match a source; none is an error).
          put(dest, local(localPath(abs), fileOpts));
          continue;
        }
        if (!existsSync(abs)) fail(ins.line, `${ins.keyword} ${src}: no such file in the build context ${t.contextDir}`);
        const isDir = statSync(abs).isDirectory();
        if (add && !isDir && isArchive(abs)) {
          if (Object.keys(fileOpts).length) fail(ins.line, `ADD ${src}: --chown/--chmod on an extracted archive are not supported: its entries keep the archive's owners and modes`);
          put(dirDest ? dest : dest + "/", archive(local(localPath(abs))));
          continue;
        }
        const excl = [...ignoreBelow(t.ignore, rel === "." ? "" : rel), ...exclude.map((e) => "/" + e.replace(/^\/+/, ""))];
        put(dest, local(localPath(abs), { ...fileOpts, ...(excl.length && isDir ? { exclude: excl } : {}) }));
      }
      if (checksum !== undefined && !sources.some((x) => /^https?:\/\//i.test(x) && gitRemote(x) === undefined)) {
        fail(ins.line, `ADD --checksum=${checksum}: only an http(s) URL source takes a checksum`);
      }
      return copy;

      /**
       * An ADD of a URL, as BuildKit reads it: a git remote (git://, ssh://, git@host:path, or an
       * http(s) URL whose path ends in ".git", with "#ref") is checked out into the destination
       * directory; any other http(s) URL is a download, pinned by --checksum or, without it, only
       * with `up --allow-unpinned`.
       */
      function addRemote(src: string) {
        const remote = gitRemote(src);
        if (remote) {
          if (remote.subdir) fail(ins.line, `ADD ${src}: a git subdirectory (#ref:${remote.subdir}) is not supported yet: check out the whole repository`);
          if (checksum !== undefined) fail(ins.line, `ADD --checksum=${checksum} ${src}: a git source is pinned by its commit (images.lock), not a checksum`);
          try {
            put(dest.endsWith("/") ? dest : dest + "/", git(remote.url, { ...(remote.ref ? { ref: remote.ref } : {}), ...(keepGitDir ? { keepGitDir } : {}), ...fileOpts }));
          } catch (e) {
            fail(ins.line, `ADD ${src}: ${(e as Error).message.replace(/^.*?git\(\): /, "")}`);
          }
          return;
        }
        if (!/^https?:\/\//i.test(src)) fail(ins.line, `ADD ${src}: only http(s) URLs and git remotes can be added`);
        if (keepGitDir) fail(ins.line, `ADD --keep-git-dir ${src}: not a git remote`);
        if (checksum !== undefined && !/^sha256:[a-f0-9]{64}$/.test(checksum)) fail(ins.line, `ADD --checksum=${checksum}: give sha256:<64 hex digits>`);
        try {
          put(dest, http(src, { ...(checksum ? { sha256: checksum } : {}), ...fileOpts }));
        } catch (e) {
          fail(ins.line, `ADD ${src}: ${(e as Error).message.replace(/^.*?http\(\): /, "")}`);
        }
      }

      /** One source of COPY --parents: its path below the pivot ("a/./b/c" keeps "b/c") goes under dest. */
      function copyParents(src: string, glob: boolean) {
        const pivot = src.indexOf("/./");
        const prefix = pivot < 0 ? "" : posix.normalize(src.slice(0, pivot).replace(/^\/+/, ""));
        const rest = posix.normalize((pivot < 0 ? src : src.slice(pivot + 3)).replace(/^\/+/, ""));
        const keep = (rel: string) => posix.join(dest, rel === "." ? "" : rel);
        if (fromStage) {
          if (glob) fail(ins.line, `${ins.keyword} --parents --from with wildcards (${src}) is not supported yet: name the paths`);
          put(keep(rest), fromStage.path(posix.resolve("/", prefix, rest), fileOpts));
          return;
        }
        for (const rel of [prefix, rest]) {
          if (rel === ".." || rel.startsWith("../")) fail(ins.line, `${ins.keyword} ${src}: the source is outside the build context`);
        }
        const base = resolve(t.contextDir, prefix);
        // Wildcards are matched when images.ts loads: each match is a source, kept at its own path.
        const matches = glob ? matchContext(base, rest) : [rest];
        if (matches.length === 0) fail(ins.line, `${ins.keyword} --parents ${src}: no files match in the build context ${t.contextDir}`);
        for (const rel of matches) {
          const abs = resolve(base, rel);
          if (!existsSync(abs)) fail(ins.line, `${ins.keyword} ${src}: no such file in the build context ${t.contextDir}`);
          const isDir = statSync(abs).isDirectory();
          const ctxRel = relative(t.contextDir, abs);
          const excl = [...ignoreBelow(t.ignore, ctxRel), ...exclude.map((e) => "/" + e.replace(/^\/+/, ""))];
          put(keep(rel) + (isDir && rel !== "." ? "/" : ""), local(localPath(abs), { ...fileOpts, ...(excl.length && isDir ? { exclude: excl } : {}) }));
        }
      }
    }

    function ownerOf(ins: Instruction, v: string): string {
      // Docker: a uid without a gid uses the same number as the gid; names resolve in the image.
      const m = /^(\d+)$/.exec(v);
      if (m) return `${m[1]}:${m[1]}`;
      if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?(?::[A-Za-z0-9_][A-Za-z0-9_.-]*\$?)?$/.test(v)) fail(ins.line, `${ins.keyword} --chown=${v}: not a user[:group] like app:app or 1000:1000`);
      return v;
    }
  }

  function platformOrFail(ins: Instruction, p: string): string {
    try {
      return canonicalPlatform(p);
    } catch {
      return fail(ins.line, `${ins.keyword} --platform=${p}: not a platform like linux/amd64 or linux/arm/v7`);
    }
  }

  /** An image reference; buildah's `oci:DIR[:REF]` names an OCI layout on this machine. */
  function imageBase(ref: string, ins: Instruction): Base {
    const layout = /^oci:([^:]+)(?::(.+))?$/.exec(ref);
    if (layout) return oci(localPath(resolve(t.contextDir, layout[1]!)), layout[2]);
    if (!/^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$/.test(ref)) fail(ins.line, `${ins.keyword === "FROM" ? "FROM" : "--from="}${ref}: not an image reference`);
    return image(ref);
  }

  /** A path under the context as local() takes it: relative to images.ts. */
  function localPath(abs: string): string {
    const rel = relative(t.projectDir, abs);
    if (rel === "") return ".";
    if (isAbsolute(rel)) return abs;
    return rel.startsWith("..") ? rel : `./${rel}`;
  }
}

interface RunMounts {
  caches: Record<string, string>;
  secrets: Record<string, { env: string } | { file: string }>;
  tmpfs: string[];
  binds: Record<string, string | StagePathSource>;
}

interface Pending {
  healthcheck?: StageOptions["healthcheck"];
  onBuild?: string[];
  env: Record<string, string>;
  labels: Record<string, string>;
  expose: string[];
  volumes: string[];
  workdir?: string;
  user?: string;
  cmd?: string[];
  entrypoint?: string[];
  stopSignal?: string;
}

function emptyPending(): Pending {
  return { env: {}, labels: {}, expose: [], volumes: [] };
}

function hasPending(p: Pending): boolean {
  return Object.keys(p.env).length > 0 || Object.keys(p.labels).length > 0 || p.expose.length > 0 || p.volumes.length > 0 || p.workdir !== undefined || p.user !== undefined || p.cmd !== undefined || p.entrypoint !== undefined || p.stopSignal !== undefined || p.healthcheck !== undefined || p.onBuild !== undefined;
}

/** The accumulated instructions as stage keys; a USER before a step is also the step's runAs. */
function pendingOptions(p: Pending): Omit<StageOptions, "from"> {
  return {
    ...(Object.keys(p.env).length ? { env: { ...p.env } } : {}),
    ...(Object.keys(p.labels).length ? { labels: { ...p.labels } } : {}),
    ...(p.expose.length ? { expose: [...p.expose] } : {}),
    ...(p.volumes.length ? { volumes: [...p.volumes] } : {}),
    ...(p.workdir !== undefined ? { workdir: p.workdir } : {}),
    ...(p.user !== undefined ? { user: p.user, runAs: p.user } : {}),
    ...(p.cmd !== undefined ? { cmd: [...p.cmd] } : {}),
    ...(p.entrypoint !== undefined ? { entrypoint: [...p.entrypoint] } : {}),
    ...(p.stopSignal !== undefined ? { stopSignal: p.stopSignal } : {}),
    ...(p.healthcheck !== undefined ? { healthcheck: p.healthcheck } : {}),
    ...(p.onBuild !== undefined ? { onBuild: [...p.onBuild] } : {}),
  };
}

/** BuildKit's predefined platform args: in FROM lines, and in a stage that declares them with ARG. */
function platformArgs(target: string, build: string): [string, string][] {
  const out: [string, string][] = [];
  for (const [prefix, platform] of [["TARGET", target], ["BUILD", build]] as const) {
    const [os, arch, variant = ""] = platform.split("/");
    out.push([`${prefix}PLATFORM`, platform], [`${prefix}OS`, os!], [`${prefix}ARCH`, arch!], [`${prefix}VARIANT`, variant]);
  }
  return out;
}

function lookupIn(m: Map<string, string | undefined>): Lookup {
  return (name) => m.get(name);
}

/** `ARG a=1 b`: names with their (expanded) defaults. */
function argPairs(ins: Instruction, lookup: Lookup, escape = "\\"): [string, string | undefined][] {
  const out: [string, string | undefined][] = [];
  for (const w of rawWords(ins.args, escape)) {
    const eq = w.indexOf("=");
    if (eq < 0) out.push([w, undefined]);
    else out.push([w.slice(0, eq), expandWord(w.slice(eq + 1), lookup, { escape })]);
  }
  for (const [k] of out) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new DockerfileError(ins.line, `ARG ${k}: not a valid name`);
  return out;
}

/** `ENV a=1 b="2 3"` or the old `ENV a 1 2`; values expanded with the variables before this line. */
function kvPairs(ins: Instruction, lookup: Lookup, escape: string, legacy: boolean): [string, string][] {
  try {
    const raw = rawWords(ins.args, escape);
    if (raw.length && !raw[0]!.includes("=")) {
      if (!legacy) throw new DockerfileError(ins.line, `${ins.keyword} needs key=value pairs`);
      const name = raw[0]!;
      const rest = ins.args.trim().slice(name.length).trim();
      if (rest === "") throw new DockerfileError(ins.line, `${ins.keyword} ${name} has no value`);
      return [[name, expandWord(rest, lookup, { escape })]];
    }
    return raw.map((w) => {
      const eq = w.indexOf("=");
      if (eq <= 0) throw new DockerfileError(ins.line, `${ins.keyword}: ${w} is not key=value`);
      return [expandWord(w.slice(0, eq), lookup, { escape }), expandWord(w.slice(eq + 1), lookup, { escape })];
    });
  } catch (e) {
    if (e instanceof WordError) throw new DockerfileError(ins.line, e.message);
    throw e;
  }
}

/** .dockerignore patterns (relative to the context) as exclude patterns relative to `rel`. */
function ignoreBelow(patterns: readonly string[], rel: string): string[] {
  const out: string[] = [];
  for (let p of patterns) {
    p = p.trim();
    if (p === "" || p.startsWith("#")) continue;
    const neg = p.startsWith("!");
    if (neg) p = p.slice(1);
    p = posix.normalize(p.replace(/^\/+/, ""));
    let mine: string | undefined;
    if (p.startsWith("**")) mine = p;
    else if (rel === "") mine = p;
    else if (p.startsWith(rel + "/")) mine = p.slice(rel.length + 1);
    if (mine !== undefined) out.push(`${neg ? "!" : ""}/${mine}`);
  }
  return out;
}

/**
 * The paths below `dir` (relative, sorted) that `pattern` matches: Go's filepath.Match per name,
 * and `**` for any number of directories, as BuildKit matches COPY --parents sources.
 */
function matchContext(dir: string, pattern: string): string[] {
  const parts = pattern.split("/").filter((p) => p !== "" && p !== ".");
  const out = new Set<string>();
  const walk = (rel: string, i: number) => {
    if (i === parts.length) {
      out.add(rel === "" ? "." : rel);
      return;
    }
    const part = parts[i]!;
    const here = rel === "" ? dir : resolve(dir, rel);
    if (part === "**") {
      walk(rel, i + 1);
      for (const name of subdirs(here)) walk(rel === "" ? name : `${rel}/${name}`, i);
      return;
    }
    if (!isGlob(part)) {
      const next = rel === "" ? part : `${rel}/${part}`;
      if (existsSync(resolve(dir, next))) walk(next, i + 1);
      return;
    }
    const re = globRegExp(part);
    let names: string[] = [];
    try {
      names = readdirSync(here).sort();
    } catch {
      return;
    }
    for (const name of names) if (re.test(name)) walk(rel === "" ? name : `${rel}/${name}`, i + 1);
  };
  walk("", 0);
  return [...out].sort();
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  } catch {
    return [];
  }
}

function isArchive(abs: string): boolean {
  const head = Buffer.alloc(512);
  const fd = openSync(abs, "r");
  let n = 0;
  try {
    n = readSync(fd, head, 0, 512, 0);
  } finally {
    closeSync(fd);
  }
  const b = head.subarray(0, n);
  if (b[0] === 0x1f && b[1] === 0x8b) return true; // gzip
  if (b.subarray(0, 3).toString("latin1") === "BZh") return true;
  if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return true; // xz
  if (b.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return true; // zstd
  return n >= 262 && b.subarray(257, 262).toString("latin1") === "ustar";
}

function sanitizeId(s: string): string {
  const id = s.replace(/^\/+/, "").replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  return id || "cache";
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}


/**
 * BuildKit's reading of an ADD source as a git remote (gitutil.ParseGitRef): git://, ssh:// and
 * scp-like `user@host:path` always; http(s) only when the path ends in ".git". The fragment is
 * `#ref` or `#ref:subdir`. Undefined: not a git remote.
 */
export function gitRemote(src: string): { url: string; ref?: string; subdir?: string } | undefined {
  const hash = src.indexOf("#");
  const url = hash < 0 ? src : src.slice(0, hash);
  const fragment = hash < 0 ? "" : src.slice(hash + 1);
  if (/^https?:\/\//i.test(url)) {
    let path: string;
    try {
      path = new URL(url).pathname;
    } catch {
      return undefined;
    }
    if (!path.endsWith(".git")) return undefined;
  } else if (!/^(git|ssh):\/\//i.test(url) && !/^[A-Za-z0-9_.-]+@[A-Za-z0-9.-]+:/.test(url)) return undefined;
  if (!isGitUrl(url)) return undefined;
  const [ref, subdir] = fragment.split(":", 2);
  return { url, ...(ref ? { ref } : {}), ...(subdir ? { subdir } : {}) };
}
