import { test } from "node:test";
import assert from "node:assert/strict";
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostPathInRoot } from "../sandbox/paths.ts";
import { scanRootfs } from "./scan.ts";

test("a package's files are the regular files at its listed paths, found through symlinked parents as the image resolves them", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "mstage-scan-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const write = (path: string, data: string) => {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), data);
  };
  write("etc/os-release", 'ID=debian\nVERSION_ID="12"\n');
  write("usr/lib/x/real.so", "real");
  write("usr/lib64/ld.so", "loader");
  write("etc/conf", "conf");
  write("dev/thing", "below a directory the walk leaves out");
  write("opt/v1/tool", "tool");
  write("big", "b".repeat(3 << 20));
  symlinkSync("usr/lib", join(root, "lib"));
  symlinkSync("/usr/lib64", join(root, "lib64"));
  symlinkSync("real.so", join(root, "usr/lib/x/link.so"));
  symlinkSync("../../../../..", join(root, "usr/lib/x/up"));
  symlinkSync("v1", join(root, "opt/current"));
  symlinkSync("loop", join(root, "usr/lib/loop"));
  symlinkSync("/lib/x", join(root, "usr/lib/abs"));
  const listed = [
    "/lib/x/real.so", // through a relative symlink
    "/lib64/ld.so", // through an absolute one
    "/usr/lib/abs/real.so", // through an absolute one to a symlink
    "/usr/lib/x/link.so", // a symlink itself: not a file of the package
    "/usr/lib/x", // a directory
    "/usr/share/missing", // not there
    "/etc/conf",
    "/dev/thing",
    "/usr/lib/x/../x/real.so",
    "/usr/lib/x/up/etc/conf", // climbing stays in the image
    "/opt/current/tool",
    "/usr/lib/loop/f", // a symlink loop
    "/usr/lib/x/../loop/f", // the same, resolved on the filesystem
    "/big",
  ];
  write("var/lib/dpkg/status", "Package: p\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n");
  write("var/lib/dpkg/info/p:amd64.list", ["/.", ...listed].join("\n") + "\n");
  // distroless's package directory, as a loop: read as no such directory.
  symlinkSync("status.d", join(root, "var/lib/dpkg/status.d"));
  const scan = await scanRootfs(root);
  const sha = (data: string) => createHash("sha256").update(data).digest("hex");
  assert.deepEqual(
    scan.files.map((f) => [f.path, f.sha256]),
    [
      ["/big", sha("b".repeat(3 << 20))],
      ["/dev/thing", sha("below a directory the walk leaves out")],
      ["/etc/conf", sha("conf")],
      ["/lib/x/real.so", sha("real")],
      ["/lib64/ld.so", sha("loader")],
      ["/opt/current/tool", sha("tool")],
      ["/usr/lib/abs/real.so", sha("real")],
      ["/usr/lib/x/../x/real.so", sha("real")],
      ["/usr/lib/x/up/etc/conf", sha("conf")],
    ],
  );
  assert.equal(scan.files.find((f) => f.path === "/big")?.sha1, createHash("sha1").update("b".repeat(3 << 20)).digest("hex"));
  // The same as resolving each path on the filesystem, a symlink loop apart (that throws there).
  const onDisk = listed.filter((p) => !p.endsWith("loop/f") && lstatSync(hostPathInRoot(root, p), { throwIfNoEntry: false })?.isFile());
  assert.deepEqual(scan.files.map((f) => f.path), onDisk.sort());
  assert.deepEqual(scan.packages.find((p) => p.name === "p")?.files, onDisk.sort());
});

test("a symlink where the walk does not go (/dev, /proc) leaves the other symlinks their own targets", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "mstage-scan-links-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, "usr/lib/x"), { recursive: true });
  mkdirSync(join(root, "var/lib/dpkg/info"), { recursive: true });
  writeFileSync(join(root, "usr/lib/x/real.so"), "real");
  // Listed before lib and lib64, in the same directory.
  symlinkSync("usr/nowhere", join(root, "dev"));
  symlinkSync("usr/nothing", join(root, "proc"));
  symlinkSync("usr/lib", join(root, "lib"));
  symlinkSync("usr/lib", join(root, "lib64"));
  writeFileSync(join(root, "var/lib/dpkg/status"), "Package: p\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n");
  writeFileSync(join(root, "var/lib/dpkg/info/p:amd64.list"), "/lib/x/real.so\n/lib64/x/real.so\n");
  const scan = await scanRootfs(root);
  assert.deepEqual(scan.files.map((f) => f.path), ["/lib/x/real.so", "/lib64/x/real.so"]);
});
