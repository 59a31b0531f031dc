// A build-only stage assembles a root filesystem and packs it as a tar; the exported image starts
// from that tar (stacker's `from: {type: tar}`), so its one layer holds exactly the tar's files.
import { debian, inline, stage, tarball } from "mstage";

const rootfs = stage("rootfs", {
  from: debian({ suite: "bookworm", packages: ["golang-go"] }),
  workdir: "/src",
  copy: {
    "/src/go.mod": inline("module app\n\ngo 1.19\n"),
    "/src/main.go": inline(`package main

import (
	"fmt"
	"os"
)

func main() {
	motd, err := os.ReadFile("/etc/motd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(string(motd))
}
`),
  },
  env: { CGO_ENABLED: "0", GOCACHE: "/root/.cache/go-build", GOFLAGS: "-trimpath" },
  run: [
    "go build -ldflags='-s -w -buildid=' -o /rootfs/bin/app .",
    "mkdir -p /rootfs/etc && echo 'Hello from a tarball image!' > /rootfs/etc/motd",
    "mkdir -p /out && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C /rootfs -cf /out/rootfs.tar bin etc",
  ],
  caches: { "/root/.cache/go-build": "go-build" },
});

export const app = stage("app", {
  from: tarball(rootfs.path("/out/rootfs.tar")),
  cmd: ["/bin/app"],
});
