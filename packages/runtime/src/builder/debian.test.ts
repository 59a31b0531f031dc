import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDpkgStatus } from "./debian.ts";

test("parseDpkgStatus lists installed packages with versions and skips removed ones", () => {
  const status = [
    "Package: golang-go\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2:1.19~1",
    "Package: old-thing\nStatus: deinstall ok config-files\nVersion: 1.0",
    "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\nDescription: x\n more",
  ].join("\n\n");
  assert.deepEqual(parseDpkgStatus(status), { "base-files": "12.4+deb12u5", "golang-go": "2:1.19~1" });
});
