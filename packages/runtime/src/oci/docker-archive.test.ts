import { test } from "node:test";
import assert from "node:assert/strict";
import { repoTag } from "./docker-archive.ts";

test("a docker-archive RepoTag is name:tag: bare names get :latest, a registry port is not a tag, digests are left out", () => {
  assert.equal(repoTag("hello"), "hello:latest");
  assert.equal(repoTag("registry.example.com/hello:1.0"), "registry.example.com/hello:1.0");
  assert.equal(repoTag("localhost:5000/team/hello"), "localhost:5000/team/hello:latest");
  assert.equal(repoTag("localhost:5000/hello:2"), "localhost:5000/hello:2");
  assert.equal(repoTag(`hello@sha256:${"a".repeat(64)}`), undefined);
});
