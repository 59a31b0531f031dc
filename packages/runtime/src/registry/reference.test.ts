import { test } from "node:test";
import assert from "node:assert/strict";
import { formatReference, parseReference, apiHost, isLoopbackHost } from "./reference.ts";

const D = "sha256:" + "ab".repeat(32);

test("short names normalise to docker.io/library with tag latest, like Docker", () => {
  assert.equal(formatReference(parseReference("golang")), "docker.io/library/golang:latest");
  assert.equal(formatReference(parseReference("golang:1.22")), "docker.io/library/golang:1.22");
  assert.equal(formatReference(parseReference("user/app:v1")), "docker.io/user/app:v1");
  assert.equal(formatReference(parseReference("index.docker.io/library/debian")), "docker.io/library/debian:latest");
});

test("a first component with a dot, a port or localhost is a registry host", () => {
  assert.deepEqual(parseReference("localhost:5000/x"), { registry: "localhost:5000", repository: "x", tag: "latest" });
  assert.deepEqual(parseReference("localhost/x:1"), { registry: "localhost", repository: "x", tag: "1" });
  assert.deepEqual(parseReference("ghcr.io/o/r/deep:2.0-rc.1"), { registry: "ghcr.io", repository: "o/r/deep", tag: "2.0-rc.1" });
  assert.deepEqual(parseReference("127.0.0.1:5000/a/b"), { registry: "127.0.0.1:5000", repository: "a/b", tag: "latest" });
  assert.deepEqual(parseReference("[::1]:5000/a"), { registry: "[::1]:5000", repository: "a", tag: "latest" });
});

test("digest pins keep the tag when both are given and drop the default tag", () => {
  assert.deepEqual(parseReference(`golang@${D}`), { registry: "docker.io", repository: "library/golang", digest: D });
  assert.deepEqual(parseReference(`localhost:5000/x:1.0@${D}`), { registry: "localhost:5000", repository: "x", tag: "1.0", digest: D });
  assert.equal(formatReference(parseReference(`x:1@${D}`)), `docker.io/library/x:1@${D}`);
});

test("bad references fail naming what is wrong", () => {
  assert.throws(() => parseReference("Golang:1"), /must be lowercase/);
  assert.throws(() => parseReference("x@sha256:abc"), /not sha256:<64/);
  assert.throws(() => parseReference("x:-bad"), /tag "-bad"/);
  assert.throws(() => parseReference("https://ghcr.io/x"), /without a scheme/);
  assert.throws(() => parseReference("a//b"), /path component ""/);
  assert.throws(() => parseReference(""), /empty/);
});

test("docker.io is reached at registry-1.docker.io and only loopback hosts are insecure by default", () => {
  assert.equal(apiHost("docker.io"), "registry-1.docker.io");
  assert.equal(apiHost("localhost:5000"), "localhost:5000");
  assert.ok(isLoopbackHost("127.0.0.1:5000"));
  assert.ok(isLoopbackHost("localhost"));
  assert.ok(isLoopbackHost("[::1]:5000"));
  assert.ok(!isLoopbackHost("registry.lan:5000"));
});
