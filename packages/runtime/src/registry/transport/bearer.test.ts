import { test } from "node:test";
import assert from "node:assert/strict";
import { parseChallenge } from "./bearer.ts";

test("WWW-Authenticate challenges parse, bearer preferred over basic", () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull"'), {
    scheme: "bearer",
    params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/x:pull" },
  });
  assert.deepEqual(parseChallenge(['Basic realm="r"', 'Bearer realm="t"']), { scheme: "bearer", params: { realm: "t" } });
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: "basic", params: { realm: "Registry Realm" } });
  assert.equal(parseChallenge(undefined), undefined);
});
