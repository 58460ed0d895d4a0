import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay } from "../src/backoff.js";

const options = { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 10_000 };

test("each wait lies in [c/2, c] with c doubling from the base up to the cap", () => {
  const ceilings = [500, 1000, 2000, 4000, 8000, 10_000, 10_000];
  ceilings.forEach((ceiling, i) => {
    assert.equal(backoffDelay(i + 1, options, () => 0), ceiling / 2, `attempt ${i + 1}, lowest`);
    assert.equal(backoffDelay(i + 1, options, () => 0.999_999), ceiling, `attempt ${i + 1}, highest`);
  });
});

test("the jitter spreads clients that failed together", () => {
  const waits = new Set(Array.from({ length: 50 }, () => backoffDelay(3, options)));
  assert.ok(waits.size > 10, `${waits.size} distinct waits`);
  for (const wait of waits) assert.ok(wait >= 1000 && wait <= 2000, String(wait));
});
