/**
 * The copies the middleware hands out: `copyJson` must equal a JSON round
 * trip, and a handler that keeps a reference to its session after the update
 * must never change what the next update of the key sees.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { MemorySessionStorage, session, type SessionFlavor } from "../mod.ts";
import { copyJson } from "../src/values.ts";
import { createHarness, message } from "./helpers/bot.ts";

Deno.test("copyJson equals JSON.parse(JSON.stringify(value))", () => {
  const proto = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
  const cases: unknown[] = [
    { count: 0, lang: "en", nested: { list: [1, "two", null, { deep: [true] }] } },
    { skipped: undefined, kept: 1 },
    { zero: -0, list: [-0] },
    proto,
    [[], {}, ""],
    "text",
    42,
    null,
    Object.assign(Object.create(null), { b: 2, a: 1 }),
    { "2": "b", "1": "a", z: 0 },
  ];
  for (const value of cases) {
    const copy = copyJson(value);
    const expected = JSON.parse(JSON.stringify(value));
    assert.deepEqual(copy, expected);
    assert.equal(JSON.stringify(copy), JSON.stringify(expected), "same text, same key order");
    if (typeof value === "object" && value !== null) assert.notEqual(copy, value);
  }
  const copied = copyJson(proto) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(copied), Object.prototype, "__proto__ stays data");
  assert.ok(Object.hasOwn(copied, "__proto__"));
  assert.ok(Object.is((copyJson({ z: -0 }) as { z: number }).z, 0));
});

Deno.test("a session kept by a handler after its update cannot change the next update's", async () => {
  type Data = { count: number; tags: string[] };
  const storage = new MemorySessionStorage<Data>();
  const h = createHarness<Context & SessionFlavor<Data>>();
  h.bot.use(session({ initial: () => ({ count: 0, tags: [] }), storage }));
  const kept: Data[] = [];
  const seen: string[] = [];
  h.bot.on("message", (ctx) => {
    seen.push(JSON.stringify(ctx.session));
    kept.push(ctx.session);
    if (ctx.message.text === "inc") ctx.session.count++;
  });
  for (const text of ["read", "inc", "read", "read", "inc", "read"]) {
    await h.send(message(1, text));
    for (const old of kept) { // mutate every session seen so far, after its update
      old.count = 1000;
      old.tags.push("leak");
    }
  }
  assert.deepEqual(h.errors, []);
  assert.deepEqual(seen, [
    '{"count":0,"tags":[]}',
    '{"count":0,"tags":[]}',
    '{"count":1,"tags":[]}',
    '{"count":1,"tags":[]}',
    '{"count":1,"tags":[]}',
    '{"count":2,"tags":[]}',
  ]);
  assert.deepEqual(storage.read("1"), { count: 2, tags: [] });
  assert.equal(new Set(kept).size, kept.length, "every update got its own object");
});
