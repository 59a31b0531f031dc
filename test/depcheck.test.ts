// Dependencies point one way, cli → runtime → core, and core does no process or network I/O.
// Reads every package's package.json and every import in its sources; fails on a wrong arrow.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const rank: Record<string, number> = { core: 0, runtime: 1, cli: 2 };
const nameOf: Record<string, string> = { "@mstage/core": "core", "@mstage/runtime": "runtime", mstage: "cli" };
const forbiddenInCore = ["node:child_process", "node:net", "node:http", "node:https", "node:dgram", "undici", "node:worker_threads"];

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.(ts|mts)$/.test(name)) out.push(p);
  }
  return out;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm)) {
    specs.push(m[1] ?? m[2] ?? m[3]);
  }
  return specs;
}

for (const pkg of Object.keys(rank)) {
  test(`package ${pkg} depends only on packages below it`, () => {
    const dir = join(root, "packages", pkg);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    for (const dep of Object.keys({ ...manifest.dependencies, ...manifest.devDependencies })) {
      const other = nameOf[dep];
      if (other) assert.ok(rank[other] < rank[pkg], `${pkg}/package.json depends on ${dep}`);
    }
    for (const file of sources(join(dir, "src"))) {
      const rel = relative(root, file);
      for (const spec of importsOf(file)) {
        const other = nameOf[spec] ?? (spec.includes(`packages/`) ? spec.split("packages/")[1].split("/")[0] : undefined);
        if (other && other !== pkg) assert.ok(rank[other] < rank[pkg], `${rel} imports ${spec}`);
        // The package's own manifest is the one file outside src/ a source may read (its version).
        const target = join(file, "..", spec);
        if (spec.startsWith("..") && !target.startsWith(join(dir, "src")) && target !== join(dir, "package.json")) {
          assert.fail(`${rel} reaches outside its package: ${spec}`);
        }
        if (pkg === "core" && !file.endsWith(".test.ts")) {
          assert.ok(!forbiddenInCore.includes(spec), `${rel} imports ${spec}: core does no process or network I/O`);
        }
      }
    }
  });
}
