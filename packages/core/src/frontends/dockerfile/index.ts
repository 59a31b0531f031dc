// `dockerfile()`: a Dockerfile's target stage as an ordinary Stage. The file is read when images.ts
// loads (core may read files; it runs no processes and opens no sockets), so plan sees the
// Dockerfile's steps like any other stages and watch mode reloads when it changes.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { UserError, formatLocation, locatedError } from "../../errors.ts";
import type { Stage } from "../../model.ts";
import { describe } from "../../api/brand.ts";
import { callerLocation } from "../../api/location.ts";
import { loadingProjectDir, noteConfigFile } from "../../api/stage.ts";
import { canonicalPlatform, formatPlatform, hostPlatform } from "../../platform.ts";
import { DockerfileError, parseDockerfile } from "./parse.ts";
import { translateDockerfile } from "./translate.ts";

/** Options of `dockerfile()`. */
export interface DockerfileOptions {
  /**
   * The name of the returned stage (its image ref in ./oci); the Dockerfile's steps are named after
   * it (`name.build.1`, …).
   * @example dockerfile("./Dockerfile", { name: "hello" })
   */
  name: string;
  /**
   * The stage to build (`FROM … AS target`); default the last one.
   * @example dockerfile("./Dockerfile", { name: "tools", target: "build" })
   */
  target?: string;
  /**
   * Build args (`--build-arg`): values for the file's `ARG`s. Each must be declared by an ARG.
   * @example dockerfile("./Dockerfile", { name: "app", args: { GO_VERSION: "1.22" } })
   */
  args?: Record<string, string>;
  /**
   * The build context, relative to images.ts; default the Dockerfile's directory. Its
   * `.dockerignore` applies to COPY and ADD.
   * @example dockerfile("./docker/Dockerfile", { name: "app", context: "." })
   */
  context?: string;
  /**
   * The platform to build for (`docker build --platform`): TARGETPLATFORM and its parts, and the
   * platform of every stage without its own `FROM --platform`; a foreign RUN goes through qemu's
   * binfmt_misc handler. Default: like stage(), the host's, or that of the stage that reads it.
   * @example dockerfile("./Dockerfile", { name: "app", platform: "linux/arm64" })
   */
  platform?: string;
  /**
   * Sources of the secrets that `RUN --mount=type=secret,id=…` mounts.
   * @example dockerfile("./Dockerfile", { name: "app", secrets: { npmrc: { file: "~/.npmrc" } } })
   */
  secrets?: Record<string, { env: string } | { file: string }>;
  /**
   * References written for the image (like `docker build -t`).
   * @example dockerfile("./Dockerfile", { name: "app", tags: ["registry.example.com/app:1.0"] })
   */
  tags?: string[];
}

const OPTIONS = ["name", "target", "args", "context", "platform", "secrets", "tags"];

/**
 * A Dockerfile's target stage (the last by default) as a Stage named `name`: export it, tag it,
 * build on it or copy from it (`dockerfile(...).path("/bin/hello")`). Each RUN, COPY and ADD is its
 * own cached step, so an edit re-runs only what follows it, as in Docker. `ADD` of an http(s) URL
 * is an `http()` source (`--checksum` pins it; without one, `up --allow-unpinned` pins it in
 * images.lock), and of a git remote (`https://…/repo.git#ref`, `git@host:repo#ref`, `git://…`) a
 * `git()` source.
 * @example export const hello = dockerfile("./Dockerfile", { name: "hello" });
 * @example const build = dockerfile("./Dockerfile", { name: "build", target: "build", args: { VERSION: "1.2" } });
 */
export function dockerfile(path: string, options: DockerfileOptions): Stage {
  const at = callerLocation(dockerfile);
  const fail = (message: string): never => {
    throw locatedError(at, `dockerfile(): ${message}`);
  };
  if (typeof path !== "string" || path === "") fail(`the path must be a non-empty string, got ${describe(path)}`);
  if (typeof options !== "object" || options === null || Array.isArray(options)) fail(`options must be an object like { name: "app" }, got ${describe(options)}`);
  for (const k of Object.keys(options)) if (!OPTIONS.includes(k)) fail(`unknown option "${k}"; allowed: ${OPTIONS.join(", ")}`);
  if (typeof options.name !== "string") fail(`"name" is required: the name of the image stage, like { name: "app" }`);
  const args = options.args ?? {};
  if (typeof args !== "object" || args === null || Object.values(args).some((v) => typeof v !== "string")) fail(`"args" must be an object of strings, got ${describe(args)}`);
  const host = formatPlatform(hostPlatform());
  if (options.platform !== undefined && typeof options.platform !== "string") fail(`"platform" must be a string like "linux/arm64", got ${describe(options.platform)}`);
  let platform = host;
  try {
    if (options.platform !== undefined) platform = canonicalPlatform(options.platform);
  } catch (e) {
    fail((e as Error).message);
  }

  const projectDir = loadingProjectDir() ?? (at ? dirname(at.file) : process.cwd());
  let file = resolve(projectDir, path);
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, "Dockerfile");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    return fail(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  noteConfigFile(file);
  const contextDir = resolve(projectDir, options.context ?? dirname(file));
  if (!existsSync(contextDir) || !statSync(contextDir).isDirectory()) fail(`the context ${contextDir} is not a directory`);
  const ignoreFile = join(contextDir, ".dockerignore");
  let ignore: string[] = [];
  if (existsSync(ignoreFile)) {
    noteConfigFile(ignoreFile);
    ignore = readFileSync(ignoreFile, "utf8").split(/\r?\n/);
  }
  const display = relative(projectDir, file) || file;
  try {
    return translateDockerfile({
      parsed: parseDockerfile(text),
      file,
      display,
      name: options.name,
      target: options.target,
      args,
      contextDir,
      projectDir,
      platform,
      buildPlatform: host,
      pinned: options.platform !== undefined,
      ignore,
      secrets: options.secrets ?? {},
      tags: options.tags ?? [],
    });
  } catch (e) {
    if (!(e instanceof DockerfileError)) throw e;
    if (e.line === 0) return fail(e.message);
    const shown = formatLocation({ file, line: e.line, column: 1 }).replace(/:1$/, "");
    const lineText = text.split(/\r?\n/)[e.line - 1] ?? "";
    throw new UserError(`${shown}: ${e.message}`, { detail: `${String(e.line).padStart(5)} | ${lineText}` });
  }
}
