import { test } from "node:test";
import assert from "node:assert/strict";
import { IgnoreRules, dockerignorePatterns } from "./ignore.ts";

/** What `patterns` decide for each [path, isDir, ignored]. */
function decides(patterns: string[], cases: [path: string, isDir: boolean, ignored: boolean][]): void {
  const r = new IgnoreRules(patterns);
  for (const [path, isDir, ignored] of cases) assert.equal(r.ignores(path, isDir), ignored, `${JSON.stringify(patterns)} on ${path}${isDir ? "/" : ""}`);
}

test("a pattern without a slash matches a name at any depth", () => {
  decides(["*.log"], [["a.log", false, true], ["deep/dir/b.log", false, true], ["a.log.txt", false, false]]);
});

test("a leading or inner slash anchors the pattern to the base", () => {
  decides(["/build"], [["build", true, true], ["src/build", true, false]]);
  decides(["docs/*.md"], [["docs/a.md", false, true], ["x/docs/a.md", false, false]]);
});

test("a trailing slash matches directories only", () => {
  decides(["node_modules/"], [["node_modules", true, true], ["node_modules", false, false]]);
});

test("** spans directories; ? and [] match one character", () => {
  decides(["a/**/z"], [["a/b/c/z", false, true], ["a/z", false, true]]);
  decides(["**/tmp"], [["x/y/tmp", true, true]]);
  decides(["logs/**"], [["logs/2024/x", false, true]]);
  decides(["file?.txt"], [["file1.txt", false, true]]);
  decides(["file[0-9].txt"], [["filea.txt", false, false]]);
  decides(["file[!0-9].txt"], [["filea.txt", false, true]]);
});

test("a negation re-includes, and the last matching pattern wins", () => {
  decides(["*.md", "!README.md"], [["notes.md", false, true], ["README.md", false, false]]);
  decides(["!a", "a"], [["a", false, true]]);
});

test("comments, blank lines and escaped specials", () => {
  decides(["# comment", "", "\\#hash", "\\!bang"], [["# comment", false, false], ["#hash", false, true], ["!bang", false, true]]);
  assert.equal(new IgnoreRules(["# only"]).empty, true);
});

test("a file inside an ignored directory is ignored through the directory", () => {
  decides(["vendor"], [["vendor/x/y.go", false, true]]);
});

test(".dockerignore patterns are Docker's: paths from the context root, ** across directories, ! re-includes", () => {
  const d = (text: string) => new IgnoreRules(dockerignorePatterns(text), ".dockerignore");
  const r = d("# comment\n*.log\n**/*.tmp\n/node_modules/\n./build/../dist\n!keep.log\n\n");
  assert.deepEqual(dockerignorePatterns("*.log\n !x \n/a//b/\n."), ["/*.log", "!/x", "/a/b"]);
  assert.equal(r.ignores("a.log", false), true);
  assert.equal(r.ignores("sub/a.log", false), false, "unlike gitignore, *.log matches only at the top");
  assert.equal(r.ignores("sub/deep/x.tmp", false), true);
  assert.equal(r.ignores("node_modules/x/y.js", false), true);
  assert.equal(r.ignores("dist", true), true);
  assert.equal(r.ignores("keep.log", false), false);
  assert.equal(r.file, ".dockerignore");
});

test("include patterns match as moby/patternmatcher does: anchored, ** across directories, a matched parent covers its children", async () => {
  const { AnchoredPatterns } = await import("./ignore.ts");
  // Cases from patternmatcher_test.go's TestMatches (those without a trailing slash in the path).
  const cases: Array<[string | string[], string, boolean]> = [
    ["**", "file", true], ["**", "dir/file", true], ["**/", "file", true], ["**/**", "dir/file", true],
    ["dir/**", "dir/file", true], ["dir/**", "dir/dir2/file", true], ["**/dir", "dir", true], ["**/dir", "dir/file", true],
    ["**/dir2/*", "dir/dir2/file", true], ["**/dir2/**", "dir/dir2/dir3/file", true], ["**file", "file", true], ["**file", "dir/dir/file", true],
    ["**/file*.txt", "dir/dir/file.txt", true], ["**/**/*.txt2", "dir/dir/file.txt", false], ["**/*.txt", "file.txt", true],
    ["a**/*.txt", "a/dir/dir/file.txt", true], ["a/*.txt", "a/dir/file.txt", false], ["a/*.txt", "a/file.txt", true],
    ["a[b-d]e", "ace", true], ["a[b-d]e", "aae", false], ["a[^b-d]e", "aze", true], [".*", ".foo", true], [".*", "foo", false],
    ["abc.def", "abcdef", false], ["abc?def", "abcZdef", true], ["**/foo/bar", "foo/bar", true], ["**/foo/bar", "dir/dir2/foo/bar", true],
    ["abc/**", "abc", false], ["abc/**", "abc/def/ghi", true], ["**/.foo", "bar.foo", false], ["a(b)c/def", "a(b)c/def", true],
    ["a.|)$(}+{bc", "a.|)$(}+{bc", true], ["dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true],
    [["**", "!util/docker/web"], "util/docker/web/foo", false], [["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", true],
    // Unlike gitignore: a name without a slash is not matched at any depth.
    ["*.js", "src/a.js", false], ["*.js", "a.js", true], ["src", "src/deep/a.js", true], ["/src/*.js", "src/a.js", true],
  ];
  for (const [pattern, path, want] of cases) {
    assert.equal(new AnchoredPatterns(Array.isArray(pattern) ? pattern : [pattern]).matches(path), want, `${JSON.stringify(pattern)} on ${path}`);
  }
});
