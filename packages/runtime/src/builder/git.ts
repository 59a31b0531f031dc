// `git()` sources: a ref resolved to its commit on the remote (`git ls-remote`, what plan and up
// pin in images.lock) and that commit's files checked out for a copy (BuildKit's git ADD). The
// git command runs with no prompt and no hooks; the user's own git config (credentials, insteadOf)
// applies, as for a clone of theirs.
import { spawn } from "node:child_process";
import { chmod, lstat, mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { UserError } from "@mstage/core";

/** How long one git command (ls-remote, a fetch) may take. */
const DEADLINE_MS = 10 * 60_000;

const COMMIT = /^[a-f0-9]{40}$/;

/** The commit `ref` names on the remote at `url`: a branch first, then a tag (peeled), or HEAD. */
export async function resolveGitRef(url: string, ref: string, signal?: AbortSignal): Promise<string> {
  if (COMMIT.test(ref)) return ref;
  const r = await gitCommand(["ls-remote", "--", url, ...(ref === "HEAD" ? ["HEAD"] : [])], undefined, signal);
  if (r.code !== 0) throw new UserError(`git ${url}: cannot list its refs: ${lastLines(r.stderr)}`);
  const refs = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    const [sha, name] = line.split("\t");
    if (sha && name && COMMIT.test(sha)) refs.set(name, sha);
  }
  const candidates = ref === "HEAD" ? ["HEAD"] : ref.startsWith("refs/") ? [`${ref}^{}`, ref] : [`refs/heads/${ref}`, `refs/tags/${ref}^{}`, `refs/tags/${ref}`];
  for (const name of candidates) {
    const sha = refs.get(name);
    if (sha) return sha;
  }
  const known = [...refs.keys()].filter((n) => !n.endsWith("^{}") && n !== "HEAD").map((n) => n.replace(/^refs\/(heads|tags)\//, ""));
  const shown = known.slice(0, 8).join(", ") + (known.length > 8 ? `, … (${known.length} in all)` : "");
  throw new UserError(`git ${url} has no branch or tag "${ref}"${known.length ? ` (it has: ${shown})` : ""}: give a branch, a tag or a full 40-digit commit id as ref`);
}

/**
 * Checks out `commit` of `url` into `dir` (created; must not exist). Only that commit is fetched
 * when the server allows it (every protocol-v2 server does for a reachable commit); otherwise
 * `ref` shallowly, then everything. Files get git's modes (0644, 0755) whatever the umask is, and
 * `.git` is removed unless `keepGitDir`.
 */
export async function checkoutGit(o: { url: string; ref: string; commit: string; dir: string; keepGitDir: boolean; signal?: AbortSignal }): Promise<void> {
  await mkdir(o.dir, { recursive: true });
  const git = async (args: string[]) => gitCommand(args, o.dir, o.signal);
  const init = await git(["init", "-q"]);
  if (init.code !== 0) throw new UserError(`git init failed: ${lastLines(init.stderr)}`);
  const tries = [
    ["fetch", "-q", "--depth", "1", "--", o.url, o.commit],
    ...(COMMIT.test(o.ref) ? [] : [["fetch", "-q", "--depth", "1", "--", o.url, o.ref]]),
    ["fetch", "-q", "--tags", "--", o.url, "+refs/heads/*:refs/remotes/origin/*"],
  ];
  let last = "";
  let found = false;
  for (const args of tries) {
    const r = await git(args);
    last = r.stderr;
    if (r.code === 0 && (await git(["cat-file", "-e", `${o.commit}^{commit}`])).code === 0) {
      found = true;
      break;
    }
  }
  if (!found) {
    const why = last.trim() ? `: ${lastLines(last)}` : "";
    throw new UserError(`git ${o.url}: commit ${o.commit} (what "${o.ref}" resolved to) cannot be fetched${why}; if the branch was rewritten, run mstage up --refresh to resolve "${o.ref}" again`);
  }
  const co = await git(["-c", "advice.detachedHead=false", "checkout", "-q", "--detach", o.commit]);
  if (co.code !== 0) throw new UserError(`git ${o.url}: cannot check out ${o.commit}: ${lastLines(co.stderr)}`);
  if (!o.keepGitDir) await rm(join(o.dir, ".git"), { recursive: true, force: true });
  await normaliseModes(o.dir, o.keepGitDir ? ".git" : undefined);
}

/** git records only "executable or not": give files 0755/0644 and directories 0755, as BuildKit's checkout has them. */
async function normaliseModes(dir: string, skip?: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const name of await readdir(dir)) {
    if (name === skip) continue;
    const p = join(dir, name);
    const st = await lstat(p);
    if (st.isDirectory()) await normaliseModes(p);
    else if (st.isFile()) await chmod(p, st.mode & 0o111 ? 0o755 : 0o644);
  }
}

interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

function gitCommand(args: string[], cwd: string | undefined, signal?: AbortSignal): Promise<GitResult> {
  const timeout = AbortSignal.timeout(DEADLINE_MS);
  return new Promise((resolve, reject) => {
    const child = spawn("git", ["-c", "core.hooksPath=/dev/null", "-c", "core.autocrlf=false", "-c", "core.symlinks=true", "-c", "init.defaultBranch=main", ...args], {
      cwd,
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") reject(new UserError("git() sources need the git command: install git (apt-get install git)"));
      else if (e.name === "AbortError" && !signal?.aborted) reject(new UserError(`git ${args.join(" ")}: no answer within ${DEADLINE_MS / 60_000} minutes`));
      else reject(e);
    });
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-3).join(" / ") || "no output";
}
