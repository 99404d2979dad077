/**
 * The shared timer behind every storage's `timeout` (storages/shared/deadlines.ts):
 * calls of mixed lengths, started at random moments, are given up no
 * earlier than their bound and soon after it, and calls that settle in
 * time are never given up, as with a timer of their own. The storages'
 * timeouts through a real server are in timeouts_test.ts.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4";
import { Deadlines } from "../storages/shared/deadlines.ts";
import { timed } from "../storages/shared/timeout.ts";
import { SessionError } from "../src/errors.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How late a give-up may be on a busy machine (the bounds here are 30-60 ms). */
const SLACK = 250;

Deno.test("deadlines: random calls are given up after their bound, never before, and settled ones never", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 30, max: 60 }),
      fc.array(
        fc.record({
          start: fc.integer({ min: 0, max: 80 }),
          length: fc.integer({ min: 0, max: 120 }),
        }),
        { minLength: 1, maxLength: 40 },
      ),
      async (ms, calls) => {
        const deadlines = new Deadlines(ms);
        const outcomes = await Promise.all(calls.map(async ({ start, length }) => {
          await sleep(start);
          const started = performance.now();
          let expired: number | undefined;
          const watch = deadlines.watch(() => (expired = performance.now() - started));
          await sleep(length);
          const ran = performance.now() - started;
          watch.done();
          return { length, ran, expired };
        }));
        for (const { length, ran, expired } of outcomes) {
          // Timers fire in the order they are due, so one that outlived its
          // bound by 20 ms was given up first, however busy the machine.
          if (length >= ms + 20) assert.notEqual(expired, undefined, `a ${length} ms call`);
          if (expired === undefined) {
            // Not given up: it settled before its bound could be noticed.
            assert.ok(ran < ms + SLACK, `a call of ${ran.toFixed(1)} ms was never given up`);
          } else {
            assert.ok(expired >= ms, `given up after ${expired.toFixed(1)} ms, bound ${ms}`);
            assert.ok(expired < ms + SLACK, `given up only after ${expired.toFixed(1)} ms`);
            assert.ok(ran >= expired, "given up after it settled");
          }
        }
        // A call settling well inside its bound is never given up.
        for (const { length, ran, expired } of outcomes) {
          if (length === 0 && ran < ms) assert.equal(expired, undefined);
        }
        assert.equal(deadlines.size, 0, "a settled call is still watched");
      },
    ),
    { numRuns: 15 },
  );
});

Deno.test("deadlines: a give-up that throws leaves the other calls watched", async () => {
  const deadlines = new Deadlines(20);
  const expired: number[] = [];
  deadlines.watch(() => {
    expired.push(1);
    throw new Error("a broken give-up");
  });
  deadlines.watch(() => expired.push(2));
  await sleep(5);
  deadlines.watch(() => expired.push(3));
  await sleep(80);
  assert.deepEqual(expired, [1, 2, 3]);
  assert.equal(deadlines.size, 0);
});

Deno.test("deadlines: a call that settled is not given up, and one started after a give-up still is", async () => {
  const deadlines = new Deadlines(20);
  const expired: string[] = [];
  const early = deadlines.watch(() => expired.push("early"));
  deadlines.watch(() => expired.push("late"));
  early.done();
  await sleep(60);
  deadlines.watch(() => expired.push("after"));
  await sleep(60);
  assert.deepEqual(expired, ["late", "after"]);
});

Deno.test("deadlines: timed() calls of one bound share it, and the error says what timed out", async () => {
  const never = new Promise<never>(() => {});
  // The bound's timer keeps no process alive: this test's own timer does.
  const alive = setTimeout(() => {}, 5000);
  const started = performance.now();
  const results = await Promise.allSettled([
    timed("TestStorage", 25, { what: 'the read of key "a"', key: "a" }, never),
    timed("TestStorage", 25, () => ({ what: 'the read of key "b"', key: "b" }), never),
    timed("TestStorage", 25, { what: 'the read of key "c"' }, sleep(1).then(() => "fast")),
  ]);
  const elapsed = performance.now() - started;
  clearTimeout(alive);
  assert.ok(elapsed >= 25 && elapsed < 25 + SLACK, `${elapsed} ms`);
  const [a, b, c] = results;
  assert.equal(c.status, "fulfilled");
  for (const [r, key] of [[a, "a"], [b, "b"]] as const) {
    assert.equal(r.status, "rejected");
    const err = (r as PromiseRejectedResult).reason;
    assert.ok(err instanceof SessionError, String(err));
    assert.match(err.message, new RegExp(`the read of key "${key}"`));
    assert.match(err.message, /25 ms/);
  }
});

Deno.test("deadlines: many calls arm one timer, and none is left once they settled and it fired", async () => {
  const BOUND = 40;
  let armed = 0;
  let fired = 0;
  const realSet = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    if (ms !== undefined && ms <= BOUND) armed++;
    return realSet(() => {
      if (ms !== undefined && ms <= BOUND) fired++;
      fn();
    }, ms);
  }) as typeof setTimeout;
  try {
    const deadlines = new Deadlines(BOUND);
    for (let i = 0; i < 100; i++) deadlines.watch(() => assert.fail("settled in time")).done();
    assert.equal(armed, 1, "one timer for 100 calls");
    await sleep(BOUND * 3);
    assert.equal(fired, 1);
    assert.equal(armed, 1, "re-armed with nothing to watch");
  } finally {
    globalThis.setTimeout = realSet;
  }
});
