// Writes docs/api.md, the API reference of the `mstage` package, from the TSDoc of its public types
// (the one-file declarations scripts/types.mjs makes from packages/cli/src/index.ts), so the page
// lists exactly what `import ... from "mstage"` offers: every exported function with its
// parameters and examples, then every exported type with each option's description and examples.
//   node scripts/api-docs.mjs            regenerate docs/api.md (pnpm docs:api)
//   node scripts/api-docs.mjs --check    exit 1 when docs/api.md is not what the sources give
import ts from "typescript";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const API_PAGE = fileURLToPath(new URL("../docs/api.md", import.meta.url));

function text(comment) {
  return (ts.getTextOfJSDocComment(comment) ?? "").trim();
}

/** Description, @param and @example of a declaration's TSDoc. */
function docOf(node) {
  const doc = { description: "", params: new Map(), examples: [] };
  for (const d of ts.getJSDocCommentsAndTags(node)) {
    if (!ts.isJSDoc(d)) continue;
    if (d.comment) doc.description = [doc.description, text(d.comment)].filter(Boolean).join("\n\n");
    for (const tag of d.tags ?? []) {
      const name = tag.tagName.text;
      if (name === "example") doc.examples.push(text(tag.comment).replace(/^\n+|\n+$/g, ""));
      else if (name === "param" && ts.isJSDocParameterTag(tag)) doc.params.set(tag.name.getText(), text(tag.comment));
    }
  }
  return doc;
}

const isExported = (n) => n.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword) === true;
/** Whitespace of a type's source text folded onto one line. */
const oneLine = (s) => s.replace(/\s*\n\s*/g, " ").replace(/\{ /g, "{ ").replace(/;\s*\}/g, " }");
const code = (s) => "`" + s + "`";

function examples(doc, out) {
  for (const e of doc.examples) out.push("```ts", e, "```", "");
}

/** GitHub's anchors for headings: lowercased, punctuation dropped, repeats numbered. */
function slugger() {
  const seen = new Map();
  return (heading) => {
    const base = heading.toLowerCase().replace(/[^a-z0-9 _-]/g, "").replace(/ /g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n ? `${base}-${n}` : base;
  };
}

/** The markdown page for the declarations in `dts` (the text of index.d.ts). */
export function apiPage(dts) {
  const sf = ts.createSourceFile("index.d.ts", dts, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  // Overloads are one entry: the first declaration's TSDoc, every signature.
  const declared = sf.statements.filter((s) => ts.isFunctionDeclaration(s) && isExported(s));
  const functions = declared.filter((f, i) => declared.findIndex((g) => g.name.text === f.name.text) === i);
  const overloads = (f) => declared.filter((g) => g.name.text === f.name.text);
  const types = sf.statements.filter((s) => (ts.isInterfaceDeclaration(s) || ts.isTypeAliasDeclaration(s)) && isExported(s));

  // Headings in page order, so repeated anchors (stage(), Stage) are numbered as GitHub does.
  const slug = slugger();
  const anchors = new Map();
  for (const f of functions) anchors.set(`${f.name.text}()`, slug(`${f.name.text}()`));
  for (const t of types) anchors.set(t.name.text, slug(t.name.text));
  const link = (heading) => `[\`${heading}\`](#${anchors.get(heading)})`;

  const body = [];
  const toc = [];
  for (const f of functions) {
    const name = f.name.text;
    const heading = `${name}()`;
    toc.push(link(heading));
    const doc = docOf(f);
    const signatures = overloads(f).map((o) => `function ${name}(${o.parameters.map((p) => p.getText(sf)).join(", ")}): ${o.type?.getText(sf) ?? "void"}`);
    body.push(`### ${heading}`, "", "```ts", ...signatures, "```", "");
    if (doc.description) body.push(doc.description, "");
    const documented = f.parameters.filter((p) => doc.params.has(p.name.getText(sf)));
    for (const p of documented) body.push(`- \`${p.name.getText(sf)}\`: ${doc.params.get(p.name.getText(sf))}`);
    if (documented.length) body.push("");
    examples(doc, body);
  }
  const typeBody = [];
  const typeToc = [];
  for (const t of types) {
    const name = t.name.text;
    typeToc.push(link(name));
    const doc = docOf(t);
    typeBody.push(`### ${name}`, "");
    if (ts.isTypeAliasDeclaration(t)) typeBody.push("```ts", `type ${name} = ${oneLine(t.type.getText(sf))}`, "```", "");
    if (doc.description) typeBody.push(doc.description, "");
    examples(doc, typeBody);
    if (!ts.isInterfaceDeclaration(t)) continue;
    const heritage = t.heritageClauses?.flatMap((h) => h.types.map((x) => x.getText(sf))) ?? [];
    if (heritage.length) typeBody.push(`Also takes every option of ${heritage.map((h) => (anchors.has(h) ? link(h) : code(h))).join(", ")}.`, "");
    for (const m of t.members) {
      // Symbol-keyed members (the brand) are how mstage recognises its objects, not API.
      if (!m.name || ts.isComputedPropertyName(m.name)) continue;
      const key = m.name.getText(sf);
      const optional = m.questionToken ? "?" : "";
      let signature;
      if (ts.isMethodSignature(m)) signature = `${key}(${m.parameters.map((p) => p.getText(sf)).join(", ")}): ${m.type?.getText(sf) ?? "void"}`;
      else signature = `${key}${optional}: ${oneLine(m.type?.getText(sf) ?? "unknown")}`;
      const md = docOf(m);
      typeBody.push(`- ${code(signature)}${md.description ? `: ${md.description.replace(/\n+/g, " ")}` : ""}`);
      if (md.examples.length) {
        typeBody.push("");
        for (const e of md.examples) typeBody.push("  ```ts", ...e.split("\n").map((l) => `  ${l}`), "  ```");
        typeBody.push("");
      }
    }
    typeBody.push("");
  }

  return [
    "# mstage API reference",
    "",
    "<!-- Generated by scripts/api-docs.mjs from the TSDoc of the package's types; do not edit.",
    "     Run `pnpm docs:api` after changing the API; test/package.test.ts fails while this page is stale. -->",
    "",
    'Everything `import { … } from "mstage"` offers in an `images.ts`. The same text shows in your',
    "editor on hover, from the package's bundled types. [README](../README.md) shows whole projects.",
    "",
    `Functions: ${toc.join(" · ")}`,
    "",
    `Types: ${typeToc.join(" · ")}`,
    "",
    "## Functions",
    "",
    ...body,
    "## Types",
    "",
    ...typeBody,
  ]
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimEnd() + "\n";
}

/** The page as the current sources give it (generates the types into a temp dir). */
export async function currentApiPage() {
  const { writeTypes } = await import("./types.mjs");
  const dir = mkdtempSync(join(tmpdir(), "mstage-api-"));
  try {
    return apiPage(readFileSync(writeTypes(join(dir, "index.d.ts")), "utf8"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const page = await currentApiPage();
  if (process.argv.includes("--check")) {
    const committed = readFileSync(API_PAGE, "utf8");
    if (committed !== page) {
      console.error("docs/api.md is out of date with the API's TSDoc: run `pnpm docs:api` and commit it");
      process.exit(1);
    }
  } else {
    writeFileSync(API_PAGE, page);
    console.log(API_PAGE);
  }
}
