// A service image on a Debian base: the server is compiled in a build stage, then the image adds a
// system user with useradd and switches to it. `user` takes effect after this stage's own `run`.
import { debian, local, stage } from "mstage";

const base = debian({ suite: "bookworm", packages: ["golang-go"] });

const build = stage("server-build", {
  from: base,
  workdir: "/src",
  copy: { "/src/go.mod": local("./go.mod"), "/src/main.go": local("./main.go") },
  env: { CGO_ENABLED: "0", GOCACHE: "/root/.cache/go-build", GOFLAGS: "-trimpath" },
  run: "go build -ldflags='-s -w -buildid=' -o /out/server .",
  caches: { "/root/.cache/go-build": "go-build" },
});

export const service = stage("service", {
  from: base,
  copy: { "/usr/local/bin/server": build.path("/out/server", { mode: 0o755 }) },
  // The workdir below exists before `run` (like Docker's WORKDIR), so useradd only has to own it.
  run: "useradd --system --uid 990 --user-group --home-dir /var/lib/app app && chown app:app /var/lib/app",
  user: "app",
  workdir: "/var/lib/app",
  env: { PORT: "8080", GREETING: "Hello from the service" },
  expose: ["8080/tcp"],
  cmd: ["/usr/local/bin/server"],
  tags: ["localhost/mstage-example/service:latest"],
});
