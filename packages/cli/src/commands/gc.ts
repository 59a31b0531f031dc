// `mstage gc [--max-size SIZE] [--dry-run]`: drops the least recently used results while the store
// is over SIZE, then everything no remaining result references. Runs inside mstage's user
// namespace: extracted layers hold files of mapped ids that the invoking user cannot remove.
import kleur from "kleur";
import { UserError } from "@mstage/core";
import { parseByteSize, reexecInUserNamespace, Store } from "@mstage/runtime";
import type { GlobalOptions } from "../options.ts";
import { formatSize } from "../render/progress.ts";

export default async function gc(_args: string[], opts: Record<string, unknown>, g: GlobalOptions): Promise<number> {
  kleur.enabled = g.color && process.stdout.isTTY === true;
  let maxSize: number | undefined;
  if (opts.maxSize !== undefined) {
    const parsed = parseByteSize(String(opts.maxSize));
    if (parsed === null) throw new UserError(`--max-size ${JSON.stringify(opts.maxSize)}: want a size like 10G, 500M or 1048576`);
    maxSize = parsed;
  }
  const dryRun = opts.dryRun === true;
  await reexecInUserNamespace(undefined, { onNote: (m) => process.stderr.write(`note: ${m}\n`) });

  const store = await Store.open(g.store);
  const r = await store.gc({
    maxSize,
    dryRun,
    timeoutMs: 0,
    onWait: (m) => process.stderr.write(`${m}\n`),
  });
  const verb = dryRun ? "would remove" : "removed";
  if (!g.quiet) {
    for (const res of r.removedResults) {
      process.stdout.write(`${verb} ${res.key.replace(/^sha256:/, "").slice(0, 12)} ${res.stage ?? ""} ${kleur.gray(formatSize(res.ownSize))}\n`);
    }
  }
  process.stdout.write(
    `${dryRun ? kleur.yellow("dry run: ") : ""}${verb} ${r.removedResults.length} result(s), ${r.removedLayers} extracted layer(s), ` +
      `${r.removedBlobs} blob(s), ${r.removedTmp} temp entr${r.removedTmp === 1 ? "y" : "ies"}; ` +
      `${formatSize(r.freed)} freed, store ${formatSize(r.sizeBefore)} → ${formatSize(r.sizeAfter)}\n`,
  );
  return 0;
}
