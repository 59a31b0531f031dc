// `mstage convert <Dockerfile|stacker.yaml> [-o images.ts]`: the file's stages, as dockerfile() or
// stacker() make them, written out as an images.ts that builds the same image. Never overwrites.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, relative, resolve } from "node:path";
import { UserError, beginStageCollection, isStage, type Stage } from "@mstage/core";
import { convertToImagesTs, dockerfile, stacker } from "@mstage/core/frontends";
import type { GlobalOptions } from "../options.ts";

export default async function convert(args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  const input = args[0];
  if (!input) throw new UserError("mstage convert needs a Dockerfile or a stacker.yaml: mstage convert ./Dockerfile -o images.ts");
  const file = resolve(input);
  if (!existsSync(file)) throw new UserError(`convert: ${file} does not exist`);
  const out = typeof opts.output === "string" ? opts.output : "images.ts";
  const toStdout = opts.print === true;
  const target = resolve(out);
  if (!toStdout && existsSync(target)) throw new UserError(`convert: ${target} exists; mstage convert never overwrites a file: pass -o another.ts (or --print)`);
  const projectDir = dirname(target);
  const kind = /\.ya?ml$/i.test(file) ? "stacker" : "dockerfile";
  const rel = relative(projectDir, file) || basename(file);
  const pathArg = rel.startsWith(".") || rel.startsWith("/") ? rel : `./${rel}`;

  const collection = beginStageCollection({ projectDir });
  let exported: Stage[];
  try {
    if (kind === "stacker") exported = Object.values(stacker(pathArg, {}));
    else {
      const name = typeof opts.name === "string" ? opts.name : defaultName(file);
      const stageOpt = typeof opts.target === "string" ? { target: opts.target } : {};
      const platform = typeof opts.platform === "string" ? { platform: opts.platform } : {};
      exported = [dockerfile(pathArg, { name, ...stageOpt, ...platform })];
    }
  } finally {
    collection.end();
  }
  const stages = collection.end();
  const text = convertToImagesTs({ stages, exported: exported.filter(isStage), file: rel, text: readFileSync(file, "utf8"), kind });
  if (toStdout) process.stdout.write(text);
  else {
    writeFileSync(target, text);
    if (!g.quiet) process.stderr.write(`wrote ${relative(process.cwd(), target) || target}: ${exported.length} image${exported.length === 1 ? "" : "s"} from ${rel}\n`);
  }
  return 0;
}

/** A stage name from the Dockerfile's directory: "my-app" for ./my-app/Dockerfile. */
function defaultName(file: string): string {
  const dir = basename(dirname(file)).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  return /^[a-z0-9]/.test(dir) ? dir : "app";
}
