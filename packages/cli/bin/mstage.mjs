#!/usr/bin/env node
// The `mstage` command: the bundled CLI, built by `pnpm build`.
process.setSourceMapsEnabled(true);
try {
  await import("../dist/mstage.mjs");
} catch (e) {
  if (e && e.code === "ERR_MODULE_NOT_FOUND" && String(e.message).includes("dist/mstage.mjs")) {
    console.error("mstage: the CLI is not built yet; run `pnpm build` in the mstage checkout");
    process.exit(1);
  }
  throw e;
}
