// One Go program for linux/amd64 and linux/arm64, cross-compiled natively (no emulation): the
// build stage runs on the build machine (`platform: "host"`, BuildKit's `FROM --platform=$BUILDPLATFORM`)
// and is written as a function of the platform it builds for, so GOARCH follows it. The exported
// image is built once per platform, and its ref in ./oci is an OCI image index of both.
import { debian, local, scratch, stage, stageFor } from "mstage";

const build = stageFor("build", (target) => ({
  platform: "host",
  from: debian({ suite: "bookworm", packages: ["golang-go"] }),
  workdir: "/src",
  copy: {
    "/src/go.mod": local("./go.mod"),
    "/src/main.go": local("./main.go"),
  },
  env: { CGO_ENABLED: "0", GOOS: target.os, GOARCH: target.arch, GOCACHE: "/root/.cache/go-build", GOFLAGS: "-trimpath" },
  run: "go build -ldflags='-s -w -buildid=' -o /out/hello .",
  caches: { "/root/.cache/go-build": "go-build" },
}));

export const hello = stage("hello", {
  platforms: ["linux/amd64", "linux/arm64"],
  from: scratch(),
  copy: { "/hello": build.path("/out/hello", { mode: 0o755 }) },
  cmd: ["/hello"],
});
