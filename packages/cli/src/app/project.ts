// What `plan` (and `up`) need besides the config: the plan context wired to the project's state,
// images.lock and the store, with nothing from @mstage/runtime loaded (a no-op plan stays cheap).
import {
  LockedBaseIdentity,
  RegistryError,
  SourcePins,
  StoreLayout,
  UserError,
  layerInStore,
  loadState,
  readStoredResult,
  readLock,
  type ImageBase,
  type LockFile,
  type PlanContext,
  type Platform,
  type SourcePinOptions,
  type Stage,
  type StageGraph,
} from "@mstage/core";

/**
 * `plan`, `up` and `watch` need something to build: a config that exports no stage (and names none
 * on the command line) is a mistake, said the same way by each, with exit 1.
 */
export function requireTargets(graph: StageGraph, file: string): void {
  if (graph.targets.length === 0) {
    throw new UserError(`${file} exports no stage, so there is nothing to build: export at least one, e.g. \`export const app = stage("app", {...})\``);
  }
}

/** What the git() and unpinned http() pins need (--offline, --allow-unpinned, the resolvers): SourcePins' options. */
export interface PlanContextOptions extends Pick<SourcePinOptions, "offline" | "allowUnpinned" | "resolveGit" | "resolveHttp"> {
  projectDir: string;
  /** Absolute store directory. */
  store: string;
  noCache?: boolean | string;
  /** Resolves an image tag that images.lock does not pin (the registry client, in `up`). */
  resolveImage?: (base: ImageBase, stage: Stage) => Promise<string | undefined>;
  /** --refresh: ask resolveImage even for tags that images.lock pins (and resolveGit for git refs). */
  refresh?: boolean;
  /** Record resolved git commits and URL digests in the lock (`up`, which writes it). */
  recordPins?: boolean;
}

export async function createPlanContext(o: PlanContextOptions): Promise<PlanContext & { lock: LockFile; warnings: string[]; sources: SourcePins }> {
  const [state, lock] = await Promise.all([loadState(o.projectDir), readLock(o.projectDir)]);
  const warnings: string[] = [];
  // A registry that cannot be reached leaves the tag unresolved ("not resolved yet"): plan still
  // answers offline, and up reports the real error. A registry that answers (404, 401) is an error.
  // Each ref is asked once per run, however many stages start from it.
  const resolved = new Map<string, Promise<string | undefined>>();
  const ask = async (base: ImageBase, stage: Stage): Promise<string | undefined> => {
    try {
      return await o.resolveImage!(base, stage);
    } catch (e) {
      if (!(e instanceof RegistryError) || (e.status !== undefined && !e.temporary)) throw e;
      warnings.push(`${base.ref} not resolved: ${e.message}`);
      return undefined;
    }
  };
  const resolveImage =
    o.resolveImage &&
    ((base: ImageBase, stage: Stage): Promise<string | undefined> => {
      const key = `${base.ref}\0${base.platform ?? ""}`;
      let p = resolved.get(key);
      if (!p) resolved.set(key, (p = ask(base, stage)));
      return p;
    });
  const bases = new LockedBaseIdentity({ projectDir: o.projectDir, lock, resolveTag: resolveImage, refresh: o.refresh });
  // Stages of one chain share their lower layers: each is looked for once per run.
  const layerPresent = new Map<string, boolean>();
  return {
    projectDir: o.projectDir,
    state,
    lock,
    warnings,
    noCache: o.noCache,
    statCacheDir: new StoreLayout(o.store).statCache(o.projectDir),
    async hasResult(layerKey) {
      return storedResultUsable(o.store, layerKey, layerPresent);
    },
    resolveBase: (base, stage) => bases.resolveBase(base, stage),
    sources: new SourcePins({
      lock,
      refresh: o.refresh,
      offline: o.offline,
      allowUnpinned: o.allowUnpinned,
      resolveGit: o.resolveGit,
      resolveHttp: o.resolveHttp,
      record: o.recordPins,
    }),
  };
}

/**
 * Whether the store holds a usable result for `layerKey`: core's readStoredResult, the rule the
 * runtime's Store.getResult applies for `up`, read straight from the files so that plan need not
 * load the runtime. Unlike getResult it does not mark the result used; `seen` memoises layers.
 */
export function storedResultUsable(store: string, layerKey: string, seen = new Map<string, boolean>()): boolean {
  const layout = new StoreLayout(store);
  const hasLayer = (diffId: string): boolean => {
    let present = seen.get(diffId);
    if (present === undefined) seen.set(diffId, (present = layerInStore(layout, diffId)));
    return present;
  };
  try {
    return readStoredResult(layout, layerKey, hasLayer) !== null;
  } catch {
    return false;
  }
}
