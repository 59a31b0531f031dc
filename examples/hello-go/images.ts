// A two-stage Go build: a throw-away toolchain stage made from Debian packages compiles a static
// binary, and the exported image holds only that binary.
import { debian, local, scratch, stage } from "mstage";

// Not exported: built only because `hello` copies from it, never written out as an image.
const build = stage("build", {
  from: debian({ suite: "bookworm", packages: ["golang-go"] }),
  workdir: "/src",
  copy: {
    "/src/go.mod": local("./go.mod"),
    "/src/main.go": local("./main.go"),
  },
  env: { CGO_ENABLED: "0", GOCACHE: "/root/.cache/go-build", GOFLAGS: "-trimpath" },
  run: "go build -ldflags='-s -w -buildid=' -o /out/hello .",
  caches: { "/root/.cache/go-build": "go-build" },
});

export const hello = stage("hello", {
  from: scratch(),
  copy: { "/hello": build.path("/out/hello", { mode: 0o755 }) },
  cmd: ["/hello"],
});
