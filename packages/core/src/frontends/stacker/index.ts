// `stacker()`: a stacker.yaml's layers as ordinary stages. Read when images.ts loads, like
// dockerfile(); the files it reads are part of the config for watch mode.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { UserError, formatLocation, locatedError } from "../../errors.ts";
import type { Stage } from "../../model.ts";
import { describe } from "../../api/brand.ts";
import { callerLocation } from "../../api/location.ts";
import { loadingProjectDir, noteConfigFile } from "../../api/stage.ts";
import { StackerError, translateStacker } from "./translate.ts";

/** Options of `stacker()`. */
export interface StackerOptions {
  /**
   * Values for the file's `${{NAME}}` and `${{NAME:default}}` (stacker's `--substitute NAME=value`).
   * @example stacker("./stacker.yaml", { substitutions: { VERSION: "1.2.0" } })
   */
  substitutions?: Record<string, string>;
}

/**
 * A stacker.yaml's layers that are not `build_only`, as Stages named like the layers: export the
 * result and `mstage up` writes the tags stacker would. Layers listed by `config: prerequisites`
 * can be built on (`type: built`) and imported from (`stacker://layer/path`).
 * @example export const images = stacker("./stacker.yaml");
 * @example export const { hello } = stacker("./hello.stacker.yaml", { substitutions: { TAG: "1.0" } });
 */
export function stacker(path: string, options: StackerOptions = {}): Record<string, Stage> {
  const at = callerLocation(stacker);
  const fail = (message: string): never => {
    throw locatedError(at, `stacker(): ${message}`);
  };
  if (typeof path !== "string" || path === "") fail(`the path must be a non-empty string, got ${describe(path)}`);
  if (typeof options !== "object" || options === null || Array.isArray(options)) fail(`options must be an object like { substitutions: { … } }`);
  for (const k of Object.keys(options)) if (k !== "substitutions") fail(`unknown option "${k}"; allowed: substitutions`);
  const subs = options.substitutions ?? {};
  if (typeof subs !== "object" || subs === null || Object.values(subs).some((v) => typeof v !== "string")) fail(`"substitutions" must be an object of strings, got ${describe(subs)}`);
  const projectDir = loadingProjectDir() ?? (at ? dirname(at.file) : process.cwd());
  const file = resolve(projectDir, path);
  const texts = new Map<string, string>();
  try {
    return translateStacker({
      file,
      projectDir,
      substitutions: subs,
      env: process.env,
      read(f) {
        let text: string;
        try {
          text = readFileSync(f, "utf8");
        } catch (e) {
          throw new StackerError(f === file ? "" : file, 0, `cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
        noteConfigFile(f);
        texts.set(f, text);
        return text;
      },
    }).exported;
  } catch (e) {
    if (!(e instanceof StackerError)) throw e;
    if (e.line === 0 || e.file === "") return fail(e.message);
    const shown = formatLocation({ file: e.file, line: e.line, column: 1 }).replace(/:1$/, "");
    const lineText = texts.get(e.file)?.split(/\r?\n/)[e.line - 1];
    throw new UserError(`${shown}: ${e.message}`, lineText === undefined ? undefined : { detail: `${String(e.line).padStart(5)} | ${lineText}` });
  }
}
