// Sources that name something that can move, pinned in images.lock as image tags are: a git() ref
// (→ the commit it resolved to) and an http() URL given without sha256 (→ the digest downloaded,
// only with --allow-unpinned). `plan` reads the pins and asks the resolvers it is given for what
// is not pinned (or for everything, with --refresh); `up` records what it resolved in the lock.
import { UserError } from "./errors.ts";
import { gitLockKey, type LockFile } from "./images-lock.ts";
import type { GitSource, HttpSource } from "./model.ts";

export interface SourcePinOptions {
  lock: LockFile;
  /** --refresh: resolve git refs again (and download unpinned URLs again, where a downloader is given). */
  refresh?: boolean;
  /** --offline: nothing is resolved; what images.lock does not pin is an error. */
  offline?: boolean;
  /** --allow-unpinned: an http() source without sha256 may be downloaded and pinned. */
  allowUnpinned?: boolean;
  /** The commit a ref names on the remote (runtime's `git ls-remote`); throws a UserError for an unknown ref. */
  resolveGit?: (url: string, ref: string) => Promise<string>;
  /** Downloads an unpinned URL and returns its "sha256:…" digest (only `up` downloads). */
  resolveHttp?: (url: string) => Promise<string>;
  /** Write what was resolved into `lock` (`up`); `plan` only reads it. */
  record?: boolean;
}

const COMMIT = /^[a-f0-9]{40}$/;

export class SourcePins {
  /** True once `lock` holds something new (only with `record`). */
  changed = false;
  private readonly memo = new Map<string, Promise<string | undefined>>();

  constructor(private readonly o: SourcePinOptions) {}

  /** The commit of a git() source; undefined while not resolved (a plan without a resolver). */
  git(src: GitSource): Promise<string | undefined> {
    if (COMMIT.test(src.ref)) return Promise.resolve(src.ref);
    const key = gitLockKey(src.url, src.ref);
    return this.once(`git\0${key}`, async () => {
      const pinned = this.o.lock.git[key];
      if (pinned && !this.o.refresh) return pinned;
      if (this.o.offline) {
        if (pinned) return pinned;
        throw new UserError(`git ${key} is not pinned in images.lock and --offline resolves nothing: run mstage up once without --offline`);
      }
      if (!this.o.resolveGit) return pinned;
      const commit = await this.o.resolveGit(src.url, src.ref);
      if (this.o.record && commit !== pinned) {
        this.o.lock.git[key] = commit;
        this.changed = true;
      }
      return commit;
    });
  }

  /** The digest an http() source is keyed by: its own sha256, or the one images.lock pins for it. */
  http(src: HttpSource): Promise<string | undefined> {
    if (src.sha256) return Promise.resolve(src.sha256);
    return this.once(`http\0${src.url}`, async () => {
      const pinned = this.o.lock.http[src.url];
      if (pinned && !(this.o.refresh && this.o.allowUnpinned && this.o.resolveHttp)) return pinned;
      if (!this.o.allowUnpinned) {
        throw new UserError(
          `http(${JSON.stringify(src.url)}) has no sha256 and images.lock does not pin it: add { sha256: "sha256:…" } (\`curl -sL URL | sha256sum\`), or run mstage up --allow-unpinned to download it once and pin its digest in images.lock`,
        );
      }
      if (this.o.offline) {
        if (pinned) return pinned;
        throw new UserError(`http(${JSON.stringify(src.url)}) is not pinned in images.lock and --offline downloads nothing: run mstage up --allow-unpinned once without --offline`);
      }
      if (!this.o.resolveHttp) return pinned;
      const digest = await this.o.resolveHttp(src.url);
      if (this.o.record && digest !== pinned) {
        this.o.lock.http[src.url] = digest;
        this.changed = true;
      }
      return digest;
    });
  }

  private once(key: string, fn: () => Promise<string | undefined>): Promise<string | undefined> {
    let p = this.memo.get(key);
    if (!p) this.memo.set(key, (p = fn()));
    return p;
  }
}
