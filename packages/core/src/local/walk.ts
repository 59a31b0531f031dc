// The exact file list of a `local()` source: what its digest covers and what the builder copies.
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync, type Stats } from "node:fs";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { UserError } from "../errors.ts";
import type { LocalSource } from "../model.ts";
import { IgnoreRules, dockerignorePatterns, parseIgnoreFile } from "./ignore.ts";

export interface LocalEntry {
  /**
   * Path relative to the source, "/"-separated. "" is the source itself when it is a single file
   * (copied to the destination path); a directory source lists its contents, not itself.
   */
  rel: string;
  abs: string;
  type: "file" | "dir" | "symlink";
  /** Permission bits (mode & 0o7777). */
  mode: number;
  size: number;
  linkTarget?: string;
  /** The lstat result, for the stat cache. */
  stat?: Stats;
}

/**
 * Project-wide ignore rules: `.mstageignore` beside images.ts (gitignore syntax) or, when there is
 * none, the `.dockerignore` a Docker user already has (Docker's syntax). `file` says which one was
 * read. Read once per project and run.
 */
export function projectIgnore(projectDir: string): IgnoreRules {
  const own = readIfExists(join(projectDir, ".mstageignore"));
  if (own !== undefined) return new IgnoreRules(parseIgnoreFile(own), ".mstageignore");
  const docker = readIfExists(join(projectDir, ".dockerignore"));
  if (docker !== undefined) return new IgnoreRules(dockerignorePatterns(docker), ".dockerignore");
  return new IgnoreRules([]);
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    return undefined;
  }
}

/** The host path of a local source (or bind): relative to the project directory unless absolute. */
export function localPath(path: string, projectDir: string): string {
  return isAbsolute(path) ? path : resolve(projectDir, path);
}

/**
 * Lists a local source, sorted by `rel`, honouring its `exclude` and the project's `.mstageignore`
 * (which never applies to the source path itself). The project's `.mstage/` and its default output
 * `oci/` (when it is an OCI layout) are always left out.
 */
export async function walkLocal(src: LocalSource, projectDir: string): Promise<LocalEntry[]> {
  return walkLocalSync(src.path, projectDir, { exclude: src.exclude, projectIgnore: projectIgnore(projectDir) });
}

export function walkLocalSync(
  path: string,
  projectDir: string,
  o: { exclude?: readonly string[]; projectIgnore?: IgnoreRules },
): LocalEntry[] {
  const root = localPath(path, projectDir);
  let st: Stats;
  try {
    st = statSync(root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${path}: ${code === "ENOENT" ? "no such file or directory" : (e as Error).message} (${root})`);
  }
  if (st.isFile()) return [{ rel: "", abs: root, type: "file", mode: st.mode & 0o7777, size: st.size, stat: st }];
  if (!st.isDirectory()) throw new UserError(`${path}: not a file or directory (${root})`);

  const exclude = new IgnoreRules(o.exclude ?? []);
  const project = o.projectIgnore && !o.projectIgnore.empty ? o.projectIgnore : undefined;
  const projectRel = relative(projectDir, root);
  const underProject = projectRel === "" || (!projectRel.startsWith("..") && !isAbsolute(projectRel));
  const prefix = projectRel === "" ? "" : projectRel.split(sep).join("/") + "/";
  const stateDir = join(projectDir, ".mstage");
  // mstage's default output: `local(".")` must not copy the images it produced last time.
  const outputDir = join(projectDir, "oci");
  const out: LocalEntry[] = [];

  const visit = (dir: string, relDir: string) => {
    const names = readdirSync(dir).sort();
    for (const name of names) {
      const abs = dir + "/" + name;
      const rel = relDir === "" ? name : relDir + "/" + name;
      const ls = lstatSync(abs);
      const isDir = ls.isDirectory();
      if (abs === stateDir || (abs === outputDir && isDir && existsSync(join(abs, "oci-layout")))) continue;
      if (!exclude.empty && exclude.ignores(rel, isDir)) continue;
      if (project && underProject && project.ignores(prefix + rel, isDir)) continue;
      const mode = ls.mode & 0o7777;
      if (isDir) {
        out.push({ rel, abs, type: "dir", mode, size: 0, stat: ls });
        visit(abs, rel);
      } else if (ls.isFile()) {
        out.push({ rel, abs, type: "file", mode, size: ls.size, stat: ls });
      } else if (ls.isSymbolicLink()) {
        out.push({ rel, abs, type: "symlink", mode, size: 0, linkTarget: readlinkSync(abs), stat: ls });
      }
      // Sockets, fifos and devices cannot be copied into an image: left out.
    }
  };
  visit(root, "");
  // Sorted by rel with "/" ordering before any other character would need a custom compare;
  // the depth-first order of sorted names is already deterministic.
  return out;
}
