import { test } from "node:test";
import assert from "node:assert/strict";
import { MmdebstrapProgress, isMountNoise, parseDpkgStatus } from "./debian.ts";

test("parseDpkgStatus lists installed packages with versions and skips removed ones", () => {
  const status = [
    "Package: golang-go\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2:1.19~1",
    "Package: old-thing\nStatus: deinstall ok config-files\nVersion: 1.0",
    "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\nDescription: x\n more",
  ].join("\n\n");
  assert.deepEqual(parseDpkgStatus(status), { "base-files": "12.4+deb12u5", "golang-go": "2:1.19~1" });
});

test("MmdebstrapProgress turns mmdebstrap --verbose output into phases with package counts", () => {
  const seen: string[] = [];
  const p = new MmdebstrapProgress((phase, progress) => seen.push(progress ? `${phase}: ${progress}` : phase));
  const read = (lines: string[]) => lines.map((l) => p.read(l));
  // What mmdebstrap 1.3.5 and apt print, in this order, for a minbase with one package.
  assert.deepEqual(
    read([
      "I: running apt-get update...",
      "Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]",
      "Get:2 http://deb.debian.org/debian bookworm/main amd64 Packages [8787 kB]",
      "Reading package lists...",
      "I: downloading packages with apt...",
      "0 upgraded, 3 newly installed, 0 to remove and 0 not upgraded.",
      "Get:1 http://deb.debian.org/debian bookworm/main amd64 gcc-12-base amd64 12.2.0-14+deb12u1 [37.6 kB]",
      "Get:2 http://deb.debian.org/debian bookworm/main amd64 libc6 amd64 2.36-9+deb12u14 [2759 kB]",
      "I: installing essential packages...",
      "Unpacking libc6:amd64 (2.36-9+deb12u14) ...",
      "Setting up gcc-12-base:amd64 (12.2.0-14+deb12u1) ...",
      "dpkg: warning: ignoring pre-dependency problem!",
    ]),
    [true, false, false, false, true, true, true, true, true, false, true, false],
  );
  assert.deepEqual(seen, [
    "running apt-get update",
    "downloading packages with apt",
    "downloading packages with apt: 3 packages",
    "downloading packages with apt: 1/3 packages fetched",
    "downloading packages with apt: 2/3 packages fetched",
    "installing essential packages: 3 packages",
    "installing essential packages: 1/3 packages set up",
  ]);
});

test("the lines of mmdebstrap's /proc and /sys mount fallback are noise; its other warnings are not", () => {
  for (const line of [
    "mount: /tmp/mstage/debian/rootfs/sys: permission denied.",
    "mount: /tmp/mstage/debian/rootfs/proc: permission denied.",
    "       dmesg(1) may have more information after failed mount system call.",
    "W: since mounting /sys normally failed, trying bind-mount",
  ]) {
    assert.ok(isMountNoise(line), line);
  }
  for (const line of ["W: Download is performed unsandboxed as root", "E: Unable to locate package nodejss", "mount: /x: wrong fs type"]) assert.ok(!isMountNoise(line), line);
});
