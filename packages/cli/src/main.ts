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

cli
  .command("plan [...targets]", "show which stages would rebuild and why")
  .option("--json", "print the plan as JSON")
  .option("--offline", "use only images.lock and the store")
  .option("--refresh", "re-resolve image tags, debian package versions and git refs")
  .option("--allow-unpinned", "accept http() sources without sha256 (up pins them in images.lock)")
  .option("--detailed-exitcode", "exit 0 when nothing would change, 2 when something would")
  .option("--cache-from <ref>", "also count stages held in a registry cache: registry://HOST/REPO")
  .option("--insecure-registry <host>", "allow plain HTTP to this registry (repeatable)")
  .option("--platform <list>", "plan only these platforms, e.g. linux/arm64 (comma-separated)")
  .action(lazy(() => import("./commands/plan.ts")));

/** The build options, declared once: `watch` takes every one of them, as `up --watch` does. */
function buildOptions<C extends ReturnType<typeof cli.command>>(c: C, o: { watch: boolean }): C {
  c.option("--output <dest>", "oci:DIR or docker-archive:FILE (repeatable)")
    .option("--push", "push each exported stage to its tags")
    .option("--no-cache [stage]", "rebuild everything, or one stage")
    .option("--rebuild <stage>", "rebuild this stage and what depends on it (what --no-cache=<stage> means)")
    .option("--jobs <n>", "stages built at once (default: CPU count)");
  if (!o.watch) c.option("--watch", "rebuild as files are saved");
  return c
    .option("--progress <mode>", "auto, tty or plain", { default: "auto" })
    .option("--json", "a JSON event stream on stdout, one event a line (see README)")
    .option("--refresh", "re-resolve image tags, debian package versions and git refs")
    .option("--offline", "use only images.lock and the store")
    .option("--allow-unpinned", "download http() sources without sha256 and pin their digests in images.lock")
    .option("--insecure-registry <host>", "allow plain HTTP to this registry (repeatable)")
    .option("--cache-to <ref>", "store built stages in a registry: registry://HOST/REPO")
    .option("--cache-from <ref>", "reuse stages from a registry: registry://HOST/REPO")
    .option("--sbom [bool]", "attach an SBOM and a provenance to each image (default true; --sbom=false: none)")
    .option("--sbom-format <format>", "spdx (default) or cyclonedx")
    .option("--compression <format>", "layer compression of every output and push: gzip or zstd (default: each stage's, else gzip)")
    .option("--platform <list>", "build only these platforms, e.g. linux/arm64 (comma-separated)");
}

buildOptions(cli.command("up [...targets]", "build the stages whose inputs changed and write the images"), { watch: false }).action(
  lazy(() => import("./commands/up.ts")),
);

buildOptions(cli.command("watch [...targets]", "alias of `up --watch`"), { watch: true }).action(lazy(() => import("./commands/watch.ts")));

cli
  .command("shell <stage> [...cmd]", "a throw-away sandbox on a stage's result")
  .action(lazy(() => import("./commands/shell.ts")));

cli
  .command("graph", "print the stage graph")
  .option("--format <format>", "text, dot or mermaid", { default: "text" })
  .action(lazy(() => import("./commands/graph.ts")));

cli
  .command("sbom <image>", "print the SBOM of a built image (a ref in ./oci, or a stage name)")
  .option("--format <format>", "spdx, cyclonedx or table (default: table on a terminal, else spdx)")
  .action(lazy(() => import("./commands/sbom.ts")));

cli.command("ls", "outputs and cached stages: digests, sizes, ages").action(lazy(() => import("./commands/ls.ts")));

cli
  .command("gc", "remove store entries that no recent result references")
  .option("--max-size <size>", "shrink the store below this size, oldest first (e.g. 10G)")
  .option("--dry-run", "say what would be removed")
  .option("--verify", "first check every blob and extracted layer; remove what is corrupt")
  .action(lazy(() => import("./commands/gc.ts")));

cli.command("init", "write a starter images.ts").action(lazy(() => import("./commands/init.ts")));

cli
  .command("convert <file>", "write an images.ts from a Dockerfile or a stacker.yaml")
  .option("-o, --output <file>", "where to write it (default images.ts)")
  .option("--print", "print it instead of writing it")
  .option("--name <name>", "the image's stage name for a Dockerfile (default: its directory's name)")
  .option("--target <stage>", "the Dockerfile stage to convert (default: the last)")
  .option("--platform <platform>", "the Dockerfile's target platform, e.g. linux/arm64 (default: unpinned)")
  .action(lazy(() => import("./commands/convert.ts")));

cli.command("doctor", "check that this machine can run rootless builds").action(lazy(() => import("./commands/doctor.ts")));

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
