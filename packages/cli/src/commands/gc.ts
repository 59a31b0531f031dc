// `mstage gc [--max-size SIZE] [--dry-run] [--verify]`: with --verify, first hashes every blob and
// checks every extracted layer, removing what is corrupt (and the results that need it); then drops
// the least recently used results while the store is over SIZE, then everything no remaining result
// references. Runs inside mstage's user namespace: extracted layers hold files of mapped ids that
// the invoking user cannot remove.
import kleur from "kleur";
import { UserError } from "@mstage/core";
import { layerMatchesTar, parseByteSize, reexecInUserNamespace, Store } from "@mstage/runtime";
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
  if (opts.verify === true && dryRun) throw new UserError("--verify removes what is corrupt; it cannot be combined with --dry-run");
  await reexecInUserNamespace(undefined, { onNote: (m) => process.stderr.write(`note: ${m}\n`) });

  const store = await Store.open(g.store);
  if (opts.verify === true) {
    const v = await store.verify(layerMatchesTar(store), { timeoutMs: 0, onWait: (m) => process.stderr.write(`${m}\n`) });
    for (const d of v.corruptBlobs) process.stdout.write(`${kleur.red("corrupt")} blob ${d}: removed\n`);
    for (const d of v.corruptLayers) process.stdout.write(`${kleur.red("corrupt")} extracted layer ${d}: removed (extracted again from its tar when next needed)\n`);
    for (const r of v.droppedResults) {
      process.stdout.write(`removed result ${r.key.replace(/^sha256:/, "").slice(0, 12)} ${r.stage ?? ""}: it needs a corrupt blob or layer; the next up rebuilds or pulls it again\n`);
    }
    const bad = v.corruptBlobs.length + v.corruptLayers.length;
    process.stdout.write(
      `verified ${v.checkedBlobs} blob(s) and ${v.checkedLayers} extracted layer(s)` +
        (v.uncheckedLayers ? ` (${v.uncheckedLayers} more have no tar in the store to compare with)` : "") +
        `: ${bad ? kleur.red(`${bad} corrupt, removed`) : "all intact"}\n`,
    );
  }
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
      `${r.removedBlobs} blob(s), ${r.removedAttestations} package scan(s), ${r.removedTmp} temp entr${r.removedTmp === 1 ? "y" : "ies"}; ` +
      `${formatSize(r.freed)} freed, store ${formatSize(r.sizeBefore)} → ${formatSize(r.sizeAfter)}\n`,
  );
  return 0;
}
