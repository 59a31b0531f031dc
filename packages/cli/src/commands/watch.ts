// `mstage watch` (and `mstage up --watch`): rebuild as files are saved. Renders the watch session's
// events as JSON lines (`--json`) or as human lines next to the usual build progress.
import kleur from "kleur";
import { reexecInUserNamespace } from "@mstage/runtime";
import type { GlobalOptions } from "../options.ts";
import { createProgress, formatDuration, resolveProgressMode } from "../render/progress.ts";
import { renderError } from "../render/errors.ts";
import { jsonEventLine } from "../render/events-json.ts";
import { runWatch, type WatchEvent } from "../watch/session.ts";
import { parseUpOptions } from "./up-options.ts";

export default async function watch(args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const flags = parseUpOptions(opts);
  const json = opts.json === true;
  const mode = json ? "quiet" : resolveProgressMode(opts.progress, g.quiet, process.stderr);
  const reexec = reexecInUserNamespace(undefined, { onNote: (m) => process.stderr.write(`note: ${m}\n`) });
  if (reexec) await reexec;

  kleur.enabled = g.color && process.stderr.isTTY === true;
  const progress = createProgress(mode);
  const say = (line: string) => {
    progress.stop();
    process.stderr.write(line + "\n");
  };
  const onEvent = (e: WatchEvent) => {
    if (json) {
      process.stdout.write(jsonEventLine(e));
      return;
    }
    switch (e.type) {
      case "watching":
        return say(kleur.gray(`watching ${e.files} path(s); press q or Ctrl-C to stop`));
      case "change":
        return say(kleur.cyan(`changed: ${e.paths.map((p) => p.replace(process.cwd() + "/", "")).join(", ")}`));
      case "config-error":
        return say(e.message.trimEnd() + "\n" + kleur.gray("keeping the last good config; waiting for the next save"));
      case "plan":
        return say(e.summary);
      case "cancelled":
        return say(kleur.yellow(`build cancelled: ${e.reason}`));
      case "build-error":
        return say(e.message.trimEnd() + "\n" + kleur.gray("waiting for the next save"));
      case "result":
        return say(
          kleur.green(`✓ ${e.built} built, ${e.cached} cached in ${formatDuration(e.ms)}`) +
            (e.saveToOutputMs === undefined ? "" : kleur.gray(` (save → output ${formatDuration(e.saveToOutputMs)})`)),
        );
      default:
        progress.onEvent(e);
    }
  };

  const stopped = new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      process.stdin.on("data", (b) => {
        const c = b.toString();
        if (c === "q" || c === "\u0003") resolve();
      });
    }
  });

  try {
    return await runWatch({
      ...flags,
      file: g.file,
      store: g.store,
      targets: args,
      verbose: g.verbose,
      onEvent,
      stopped,
      describeError: (e) => renderError(e, { verbose: g.verbose, color: g.color }),
    });
  } finally {
    progress.stop();
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(false);
      process.stdin.pause();
    }
  }
}
