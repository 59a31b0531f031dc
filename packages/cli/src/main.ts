// The `mstage` command line: parses arguments with cac, runs one command, and maps every error to
// an exit code in one place.
import { cac } from "cac";
import { UserError, didYouMean } from "@mstage/core";
import { resolveGlobalOptions, type GlobalOptions } from "./options.ts";
import { renderError } from "./render/errors.ts";
import { VERSION } from "./version.ts";

type Handler = (args: string[], opts: Record<string, unknown>, g: GlobalOptions) => Promise<number>;

/** Loads a command's module only when it runs, so `mstage plan` pays nothing for `up`'s imports. */
function lazy(load: () => Promise<{ default: Handler }>): (...a: unknown[]) => Promise<void> {
  return async (...a: unknown[]) => {
    const opts = a.pop() as Record<string, unknown>;
    const args = a.flat().filter((x): x is string => typeof x === "string");
    const g = resolveGlobalOptions(opts);
    const handler = (await load()).default;
    process.exitCode = await handler(args, opts, g);
  };
}

const cli = cac("mstage");
cli
  .option("-f, --file <file>", "the images.ts to use", { default: "images.ts" })
  .option("--store <dir>", "content store (env MSTAGE_STORE; default $XDG_CACHE_HOME/mstage)")
  .option("--no-color", "plain output without colours")
  .option("-q, --quiet", "print only results")
  .option("-v, --verbose", "more output, and stacks on errors");

/** One option of a command: cac's flags, its help line, and cac's config (a default). */
type Option = readonly [flags: string, about: string, config?: { default: unknown }];

const REFRESH: Option = ["--refresh", "re-resolve image tags, debian package versions and git refs"];
const OFFLINE: Option = ["--offline", "use only images.lock and the store"];
const INSECURE: Option = ["--insecure-registry <host>", "allow plain HTTP to this registry (repeatable)"];

/** The build options, declared once: `up` and `watch` take every one (`watch` is `up --watch`, so it lacks that flag). */
const BUILD_OPTIONS: readonly Option[] = [
  ["--output <dest>", "oci:DIR or docker-archive:FILE (repeatable)"],
  ["--push", "push each exported stage to its tags"],
  ["--no-cache [stage]", "rebuild everything, or one stage"],
  ["--rebuild <stage>", "rebuild this stage and what depends on it (what --no-cache=<stage> means)"],
  ["--jobs <n>", "stages built at once (default: CPU count)"],
  ["--watch", "rebuild as files are saved"],
  ["--progress <mode>", "auto, tty or plain", { default: "auto" }],
  ["--json", "a JSON event stream on stdout, one event a line (see README)"],
  REFRESH,
  OFFLINE,
  ["--allow-unpinned", "download http() sources without sha256 and pin their digests in images.lock"],
  INSECURE,
  ["--cache-to <ref>", "store built stages in a registry: registry://HOST/REPO"],
  ["--cache-from <ref>", "reuse stages from a registry: registry://HOST/REPO"],
  ["--sbom [bool]", "attach an SBOM and a provenance to each image (default true; --sbom=false: none)"],
  ["--sbom-format <format>", "spdx (default) or cyclonedx"],
  ["--compression <format>", "layer compression of every output and push: gzip or zstd (default: each stage's, else gzip)"],
  ["--platform <list>", "build only these platforms, e.g. linux/arm64 (comma-separated)"],
];

/** The options of each command that has some. */
const OPTIONS: Record<string, readonly Option[]> = {
  plan: [
    ["--json", "print the plan as JSON"],
    OFFLINE,
    REFRESH,
    ["--allow-unpinned", "accept http() sources without sha256 (up pins them in images.lock)"],
    ["--detailed-exitcode", "exit 0 when nothing would change, 2 when something would"],
    ["--cache-from <ref>", "also count stages held in a registry cache: registry://HOST/REPO"],
    INSECURE,
    ["--platform <list>", "plan only these platforms, e.g. linux/arm64 (comma-separated)"],
  ],
  up: BUILD_OPTIONS,
  watch: BUILD_OPTIONS.filter(([flags]) => flags !== "--watch"),
  graph: [["--format <format>", "text, dot or mermaid", { default: "text" }]],
  sbom: [["--format <format>", "spdx, cyclonedx or table (default: table on a terminal, else spdx)"]],
  gc: [
    ["--max-size <size>", "shrink the store below this size, oldest first (e.g. 10G)"],
    ["--dry-run", "say what would be removed"],
    ["--verify", "first check every blob and extracted layer; remove what is corrupt"],
  ],
  convert: [
    ["-o, --output <file>", "where to write it (default images.ts)"],
    ["--print", "print it instead of writing it"],
    ["--name <name>", "the image's stage name for a Dockerfile (default: its directory's name)"],
    ["--target <stage>", "the Dockerfile stage to convert (default: the last)"],
    ["--platform <platform>", "the Dockerfile's target platform, e.g. linux/arm64 (default: unpinned)"],
  ],
};

/** Every command: its usage, its help line, and the module that runs it (loaded only then). */
const COMMANDS: readonly (readonly [usage: string, about: string, run: () => Promise<{ default: Handler }>])[] = [
  ["plan [...targets]", "show which stages would rebuild and why", () => import("./commands/plan.ts")],
  ["up [...targets]", "build the stages whose inputs changed and write the images", () => import("./commands/up.ts")],
  ["watch [...targets]", "alias of `up --watch`", () => import("./commands/watch.ts")],
  ["shell <stage> [...cmd]", "a throw-away sandbox on a stage's result", () => import("./commands/shell.ts")],
  ["graph", "print the stage graph", () => import("./commands/graph.ts")],
  ["sbom <image>", "print the SBOM of a built image (a ref in ./oci, or a stage name)", () => import("./commands/sbom.ts")],
  ["ls", "outputs and cached stages: digests, sizes, ages", () => import("./commands/ls.ts")],
  ["gc", "remove store entries that no recent result references", () => import("./commands/gc.ts")],
  ["init", "write a starter images.ts", () => import("./commands/init.ts")],
  ["convert <file>", "write an images.ts from a Dockerfile or a stacker.yaml", () => import("./commands/convert.ts")],
  ["doctor", "check that this machine can run rootless builds", () => import("./commands/doctor.ts")],
];

for (const [usage, about, run] of COMMANDS) {
  const command = cli.command(usage, about);
  for (const [flags, help, config] of OPTIONS[usage.split(" ")[0]!] ?? []) command.option(flags, help, config);
  command.action(lazy(run));
}

// cac prints "(default: true)" after every --no-… flag, which reads as if the flag were on.
cli.help((sections) => sections.map((x) => ({ ...x, body: x.body.replace(/^(\s*--no-.*?)\s*\(default: true\)$/gm, "$1") })));
// -v is --verbose alone; the version is -V, as in node, npm and git.
cli.version(VERSION, "-V, --version");

/** cac's parse errors (unknown flag, missing argument or value) in one line naming the flag. */
function commandLineError(e: Error): UserError {
  const cmd = cli.matchedCommand;
  const where = cmd ? `mstage ${cmd.name}` : "mstage";
  const unknown = /^Unknown option `([^`]+)`/.exec(e.message);
  if (unknown) {
    const flag = unknown[1]!;
    const known = [...(cmd?.options ?? []), ...cli.globalCommand.options].flatMap((o) => o.rawName.split(/[\s,]+/).filter((w) => w.startsWith("-")));
    return new UserError(`unknown option ${flag} for ${where}${didYouMean(flag, known)}; see \`${where} --help\``);
  }
  const missingArgs = /^missing required args for command `(.+)`$/.exec(e.message);
  if (missingArgs) return new UserError(`${where} needs more arguments: mstage ${missingArgs[1]}`);
  const missingValue = /^option `(.+?)` value is missing$/.exec(e.message);
  if (missingValue) return new UserError(`${missingValue[1]!.split(" ")[0]} needs a value: ${where} ${missingValue[1]}`);
  return new UserError(`${where}: ${e.message}`);
}

async function main(): Promise<void> {
  try {
    // mri reads `--no-cache=build` as an unknown flag named "cache=build": spell it --rebuild=build.
    cli.parse(process.argv.map((a) => (a.startsWith("--no-cache=") ? `--rebuild=${a.slice("--no-cache=".length)}` : a)), { run: false });
    if (!cli.matchedCommand) {
      if (cli.args.length) throw new UserError(`unknown command "${cli.args[0]}"; see \`mstage --help\``);
      if (!cli.options.help && !cli.options.version) cli.outputHelp();
      return;
    }
    await cli.runMatchedCommand();
  } catch (caught) {
    const e = caught instanceof Error && caught.name === "CACError" ? commandLineError(caught) : caught;
    const verbose = process.argv.includes("-v") || process.argv.includes("--verbose");
    process.stderr.write(renderError(e, { verbose, color: !process.argv.includes("--no-color") }));
    process.exitCode = 1;
  }
}

await main();
// The command is done: exit now rather than wait for handles a library left open (esbuild's
// service process, a watcher). Writes to pipes and files are synchronous on Linux, so none is lost.
process.exit();
