// For the runtime's unit tests only (nothing in the library imports it): a store in a temp dir.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "./store.ts";

/** Runs `fn` on a fresh store at `<dir>/store` (`dir` also holds the test's own trees), removed afterwards. */
export async function withStore(fn: (store: Store, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mstage-store-"));
  try {
    await fn(await Store.open(join(dir, "store")), dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
