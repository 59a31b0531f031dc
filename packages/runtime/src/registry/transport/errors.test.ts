import { test } from "node:test";
import assert from "node:assert/strict";
import { redact } from "./errors.ts";
import { retryAfterMs } from "./retry.ts";

test("redacted URLs keep neither userinfo nor upload state, and Retry-After reads seconds or dates", () => {
  const r = redact("https://user:secret@reg.example/v2/x/blobs/uploads/abc?_state=SECRET&digest=sha256:1");
  assert.ok(!r.includes("secret") && !r.includes("SECRET") && !r.includes("user"), r);
  assert.ok(r.includes("digest=sha256%3A1") || r.includes("digest=sha256:1"), r);
  assert.equal(retryAfterMs("3"), 3000);
  const soon = retryAfterMs(new Date(Date.now() + 5000).toUTCString())!;
  assert.ok(soon > 3000 && soon <= 5000, String(soon));
  assert.equal(retryAfterMs("soon"), undefined);
});
