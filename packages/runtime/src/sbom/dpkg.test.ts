import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCopyright, parseFileList, parseStatus } from "./dpkg.ts";
import { parseApkInstalled } from "./apk.ts";
import { purl } from "./purl.ts";

const STATUS = `Package: hello
Status: install ok installed
Architecture: amd64
Version: 2.10-3
Description: example package
 based on GNU hello

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libstdc++6
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14
`;

test("dpkg status: installed packages only, with arch and source package", () => {
  assert.deepEqual(parseStatus(STATUS), [
    { name: "hello", version: "2.10-3", arch: "amd64" },
    { name: "libstdc++6", version: "12.2.0-14", arch: "amd64", source: "gcc-12" },
  ]);
});

test("a distroless status.d file has no Status field and still counts", () => {
  assert.deepEqual(parseStatus("Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n", false), [{ name: "tzdata", version: "2024a-0+deb12u1", arch: "all" }]);
});

test("file lists and DEP-5 licenses; a free-form copyright file states none", () => {
  assert.deepEqual(parseFileList("/.\n/usr\n/usr/bin/hello\n"), ["/usr", "/usr/bin/hello"]);
  const dep5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+\n\nFiles: lib/*\nLicense: LGPL-2.1+\n Some text\n\nLicense: GPL-3+\n full text\n";
  assert.deepEqual(parseCopyright(dep5), ["GPL-3+", "LGPL-2.1+"]);
  assert.deepEqual(parseCopyright("This is hello, written by...\nLicense: GPL\n"), []);
});

test("apk installed database: name, version, arch, license and owned files", () => {
  const db = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\nR:libc.musl-x86_64.so.1\n\nP:busybox\nV:1.36.1-r5\nF:bin\nR:busybox\n";
  assert.deepEqual(parseApkInstalled(db), [
    { checksum: "Q1abc=", name: "musl", version: "1.2.4-r2", arch: "x86_64", license: "MIT", origin: "musl", files: ["/lib/ld-musl-x86_64.so.1", "/lib/libc.musl-x86_64.so.1"] },
    { name: "busybox", version: "1.36.1-r5", files: ["/bin/busybox"] },
  ]);
});

test("purls percent-encode names and versions and sort qualifiers", () => {
  assert.equal(purl("deb", "debian", "hello", "2.10-3", { distro: "debian-12", arch: "amd64" }), "pkg:deb/debian/hello@2.10-3?arch=amd64&distro=debian-12");
  assert.equal(purl("deb", "debian", "libstdc++6", "1:2.0~rc1", { arch: "amd64" }), "pkg:deb/debian/libstdc%2B%2B6@1%3A2.0~rc1?arch=amd64");
  assert.equal(purl("npm", "@types", "node", "20.1.0"), "pkg:npm/%40types/node@20.1.0");
  assert.equal(purl("golang", "example.com", "greeter", undefined), "pkg:golang/example.com/greeter");
});
