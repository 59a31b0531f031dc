// Runs the built `mstage` CLI (pnpm build) on a project directory, like a user would.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const MSTAGE_BIN = new URL("../../packages/cli/bin/mstage.mjs", import.meta.url).pathname;
export const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function mstage(cwd: string, args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [MSTAGE_BIN, ...args], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1", ...env },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A fresh copy of a fixture project in a temp dir (tests edit their copy). */
export function copyFixture(name: string, into?: string): string {
  const dir = into ?? mkdtempSync(join(tmpdir(), `mstage-${name}-`));
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  return dir;
}
