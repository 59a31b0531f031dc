// Sources: what `copy` values and `tarball()` take. `someStage.path()` lives with the stage.
import { locatedError } from "../errors.ts";
import type { ArchiveSource, FileOptions, GitSource, HttpSource, InlineSource, LocalSource, StagePathSource } from "../model.ts";
import { SOURCE_BRAND, branded, describe, isSource } from "./brand.ts";
import { callerLocation } from "./location.ts";

/** Options of `local()`. */
export interface LocalOptions extends FileOptions {
  /**
   * gitignore-style patterns, relative to the source directory, of files to leave out (and out of
   * the stage key). A `.mstageignore` beside `images.ts` applies as well or, when there is none, a
   * `.dockerignore` there (in Docker's syntax: paths from the directory of `images.ts`).
   * @example local("./web", { exclude: ["node_modules/", "*.log"] })
   */
  exclude?: string[];
  /**
   * BuildKit's include patterns (moby/patternmatcher): paths from the source directory, where `*`,
   * `?` and `[…]` stay within one name, `**` spans directories, a matched directory brings what is
   * below it and `!` leaves out again (the last match decides). Only what they match (and the
   * directories leading to it) is copied and keyed. Anchored, unlike `exclude`: `"*.js"` matches
   * only at the top, `"lib/*.js"` only in lib, `"lib/**"` everything below lib.
   * @example local("./web", { include: ["*.js", "lib/**", "package.json"] })
   * @example local(".", { include: ["cmd/**", "go.mod", "go.sum", "!cmd/tools"] })
   */
  include?: string[];
}

/**
 * Files from the host, relative to the directory of `images.ts` (or absolute). Hashed by content
 * (path, type, mode, symlink target and bytes; never mtime), so touching a file rebuilds nothing.
 * A directory copies its contents to the destination; hardlinks between its files stay hardlinks.
 * Wildcards (`*`, `?`, `[…]`) work as in Docker's `COPY sub/l* /dest/`: each match is a source (a
 * file goes in by its name, a directory's contents are copied), and no match is an error.
 * @example copy: { "/app/": local("./dist/*.js") }
 * @example copy: { "/src": local("./src", { exclude: ["*.test.go"] }) }
 * @example copy: { "/usr/local/bin/run.sh": local("./run.sh", { mode: 0o755 }) }
 */
export function local(path: string, options: LocalOptions = {}): LocalSource {
  const at = callerLocation(local);
  if (typeof path !== "string" || path === "") {
    throw locatedError(at, `local(): the path must be a non-empty string, got ${describe(path)}`);
  }
  checkFileOptions("local", options, ["exclude", "include", "mode", "owner"], at);
  const exclude = options.exclude ?? [];
  if (!Array.isArray(exclude) || exclude.some((p) => typeof p !== "string")) {
    throw locatedError(at, `local(): "exclude" must be an array of strings, got ${describe(exclude)}`);
  }
  const include = options.include ?? [];
  if (!Array.isArray(include) || include.some((p) => typeof p !== "string" || p.trim() === "")) {
    throw locatedError(at, `local(): "include" must be an array of patterns like "*.js", got ${describe(include)}`);
  }
  return branded(SOURCE_BRAND, {
    kind: "local" as const,
    path,
    exclude: Object.freeze([...exclude]),
    ...(include.length ? { include: Object.freeze([...include]) } : {}),
    ...fileOptions(options),
  });
}

/**
 * A file written from the config itself, like a Dockerfile heredoc (`COPY <<EOF`).
 * @example copy: { "/etc/motd": inline("built by mstage\n") }
 * @example copy: { "/entrypoint.sh": inline("#!/bin/sh\nexec \"$@\"\n", { mode: 0o755 }) }
 */
export function inline(text: string, options: FileOptions = {}): InlineSource {
  const at = callerLocation(inline);
  if (typeof text !== "string") throw locatedError(at, `inline(): the text must be a string, got ${describe(text)}`);
  checkFileOptions("inline", options, ["mode", "owner"], at);
  return branded(SOURCE_BRAND, { kind: "inline" as const, text, ...fileOptions(options) });
}

/**
 * A tar archive extracted into the destination directory, as Docker's `ADD x.tar.gz /dst/` does:
 * plain, gzip, bzip2, xz or zstd (told by its first bytes); entries keep the owners, modes and
 * xattrs the archive gives them; entries that would land outside the destination (`..`, absolute
 * names, symlinked parents) are refused, as for layers. Keyed by the archive's bytes.
 * @example copy: { "/opt/": archive(local("./vendor/tool-1.2.tar.gz")) }
 * @example copy: { "/srv/site/": archive(build.path("/out/site.tar.zst")) }
 */
export function archive(source: LocalSource | StagePathSource): ArchiveSource {
  const at = callerLocation(archive);
  if (!isSource(source) || (source.kind !== "local" && source.kind !== "stage-path")) {
    throw locatedError(at, `archive(): the source must be local(…) or someStage.path(…), got ${describe(source)}`);
  }
  if (source.mode !== undefined || source.owner !== undefined) {
    throw locatedError(at, `archive(): the archive's entries keep their own owners and modes; drop mode/owner from its source`);
  }
  return branded(SOURCE_BRAND, { kind: "archive" as const, source });
}

/** Options of `http()`. */
export interface HttpOptions extends FileOptions {
  /**
   * The file's sha256 ("sha256:…" or 64 hex digits): it pins the download and keys the stage, so a
   * plan needs no network and a changed file on the server is an error, not a rebuild. Without it
   * the build is refused unless `mstage up --allow-unpinned`, which downloads the file once and
   * pins its digest in images.lock (as a tag is pinned; `--refresh` downloads it again).
   * @example http("https://example.com/tool.tar.gz", { sha256: "sha256:5f2b…" })
   */
  sha256?: string;
}

/**
 * A file downloaded when the stage builds (BuildKit's `ADD --checksum=sha256:… https://…`), checked
 * against `sha256`. A destination ending in `/` gets the file by the URL's last path segment.
 * Like Docker's ADD, the file's mode is 0600 unless `mode` says otherwise; it belongs to root
 * unless `owner` says otherwise.
 * @example copy: { "/usr/local/bin/tini": http("https://github.com/krallin/tini/releases/download/v0.19.0/tini", { sha256: "93dcc18adc78c65a028a84799ecf8ad40c936fdfc5f2a57b1acda5a8117fa82c", mode: 0o755 }) }
 * @example copy: { "/opt/": http("https://example.com/latest.tar.gz") } // needs `up --allow-unpinned` once; images.lock pins it
 */
export function http(url: string, options: HttpOptions = {}): HttpSource {
  const at = callerLocation(http);
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (typeof url !== "string" || !parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    throw locatedError(at, `http(): the URL must be http:// or https://, got ${describe(url)}`);
  }
  checkFileOptions("http", options, ["sha256", "mode", "owner"], at);
  if (options.sha256 === undefined) return branded(SOURCE_BRAND, { kind: "http" as const, url, ...fileOptions(options) });
  const m = typeof options.sha256 === "string" ? /^(?:sha256:)?([a-f0-9]{64})$/.exec(options.sha256) : null;
  if (!m) throw locatedError(at, `http(): "sha256" must be 64 hex digits (optionally "sha256:" first), got ${describe(options.sha256)}`);
  return branded(SOURCE_BRAND, { kind: "http" as const, url, sha256: `sha256:${m[1]}`, ...fileOptions(options) });
}

/** Options of `git()`. */
export interface GitOptions extends FileOptions {
  /**
   * A branch, a tag or a full 40-digit commit id; default the remote's default branch (HEAD).
   * `up` resolves a branch or tag to its commit once and pins it in images.lock; `--refresh`
   * resolves it again (a moved branch then shows in `plan` and rebuilds).
   * @example git("https://github.com/moby/buildkit.git", { ref: "v0.12.5" })
   */
  ref?: string;
  /**
   * Keep the `.git` directory in the copied checkout (BuildKit's `ADD --keep-git-dir`); default
   * false: only the commit's files are copied.
   * @example git("https://example.com/app.git", { ref: "main", keepGitDir: true })
   */
  keepGitDir?: boolean;
}

/** A full commit id: taken as it is, never resolved. */
export const GIT_COMMIT = /^[a-f0-9]{40}$/;

/**
 * A git repository's files at one commit (BuildKit's `ADD https://…/repo.git#ref /dst`), copied
 * into the destination directory. Keyed by the commit `ref` resolves to, which images.lock pins,
 * so a plan needs no network and a moved branch changes nothing until `--refresh`. Files keep the
 * modes git gives them (0644, 0755, symlinks) and belong to root unless `owner` says otherwise.
 * Submodules are not checked out.
 * @example copy: { "/src/": git("https://github.com/krallin/tini.git", { ref: "v0.19.0" }) }
 * @example copy: { "/src/": git("git@github.com:me/private.git", { ref: "main", owner: "app" }) }
 */
export function git(url: string, options: GitOptions = {}): GitSource {
  const at = callerLocation(git);
  if (typeof url !== "string" || !isGitUrl(url)) {
    throw locatedError(at, `git(): the URL must be https://, http://, git://, ssh://, file:// or like git@host:path, got ${describe(url)}`);
  }
  checkFileOptions("git", options, ["ref", "keepGitDir", "mode", "owner"], at);
  const ref = options.ref ?? "HEAD";
  // What `git check-ref-format` refuses, and anything git would read as an option.
  if (typeof ref !== "string" || ref === "" || ref.startsWith("-") || /[\s~^:?*[\\]|\.\.|@\{|\/\/|\.lock$|\/$/.test(ref)) {
    throw locatedError(at, `git(): "ref" must be a branch, a tag or a full commit id, got ${describe(ref)}`);
  }
  if (options.keepGitDir !== undefined && typeof options.keepGitDir !== "boolean") {
    throw locatedError(at, `git(): "keepGitDir" must be true or false, got ${describe(options.keepGitDir)}`);
  }
  return branded(SOURCE_BRAND, { kind: "git" as const, url, ref, keepGitDir: options.keepGitDir ?? false, ...fileOptions(options) });
}

/** The URL forms git itself clones from; an option-like string ("-u…") never is one. */
export function isGitUrl(url: string): boolean {
  if (url.startsWith("-")) return false;
  if (/^(https?|git|ssh|file):\/\/[^\s]+$/.test(url)) {
    try {
      return new URL(url).pathname !== "" || url.startsWith("file://");
    } catch {
      return false;
    }
  }
  return /^[A-Za-z0-9_.-]+@[A-Za-z0-9.-]+:[^\s]+$/.test(url);
}

/** A user and optional group, each a name (as useradd allows) or a number. */
const OWNER = /^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?(?::[A-Za-z0-9_][A-Za-z0-9_.-]*\$?)?$/;
const MAX_ID = 4294967294;

/** Validates `mode`/`owner` (and rejects unknown option names) for the source helpers. */
export function checkFileOptions(
  fn: string,
  options: unknown,
  allowed: string[],
  at: Parameters<typeof locatedError>[0],
): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw locatedError(at, `${fn}(): options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw locatedError(at, `${fn}(): unknown option "${key}"; allowed: ${allowed.join(", ")}`);
    }
  }
  const { mode, owner } = options as FileOptions;
  if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o7777)) {
    throw locatedError(at, `${fn}(): "mode" must be permission bits like 0o755, got ${describe(mode)}`);
  }
  if (owner !== undefined && (typeof owner !== "string" || !OWNER.test(owner))) {
    throw locatedError(at, `${fn}(): "owner" must be "user", "user:group", "uid" or "uid:gid" (like "app:app" or "1000:1000"), got ${describe(owner)}`);
  }
  // 2^32-1 is no id: chown reads it as "leave unchanged".
  if (owner !== undefined && owner.split(":").some((id) => /^\d+$/.test(id) && Number(id) > MAX_ID)) {
    throw locatedError(at, `${fn}(): "owner" ids are at most ${MAX_ID}, got ${describe(owner)}`);
  }
}

export function fileOptions(o: FileOptions): FileOptions {
  const out: { mode?: number; owner?: string } = {};
  if (o.mode !== undefined) out.mode = o.mode;
  if (o.owner !== undefined) out.owner = o.owner;
  return out;
}
