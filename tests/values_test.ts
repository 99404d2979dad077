/**
 * Copies and comparisons: `cloneJson` (the memory storage's copies) must
 * equal a JSON round trip, `sameAs` must only say "equal" when the value has
 * the content of its snapshot, and a handler that keeps a reference to its
 * session after the update must never change what the next update of the
 * key sees.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { MemorySessionStorage, session, type SessionFlavor, SessionValueError } from "../mod.ts";
import { cloneJson } from "../src/values.ts";
import { OPAQUE, sameAs, snapshot } from "../src/snapshot.ts";

import { createHarness, message } from "./helpers/bot.ts";

Deno.test("cloneJson copies clean JSON data exactly, sharing nothing", () => {
  const texts = [
    '{"count":0,"lang":"en","nested":{"list":[1,"two",null,{"deep":[true]}]}}',
    '{"__proto__":{"polluted":true},"a":1,"b":{"__proto__":[1]}}',
    '[[],{},"",[{"x":[0]}]]',
    '{"2":"b","1":"a","z":0}',
    '"text"',
    "42",
    "null",
  ];
  for (const text of texts) {
    const clean = JSON.parse(text);
    const copy = cloneJson(clean);
    assert.equal(JSON.stringify(copy), JSON.stringify(clean), "same text, same key order");
    assert.deepEqual(copy, clean);
    if (typeof clean === "object" && clean !== null) {
      assert.notEqual(copy, clean);
      // No object inside is shared with the original.
      const inner = (v: unknown, out: object[] = []): object[] => {
        if (typeof v === "object" && v !== null) {
          out.push(v);
          for (const item of Object.values(v)) inner(item, out);
        }
        return out;
      };
      const shared = inner(copy).filter((o) => inner(clean).includes(o));
      assert.deepEqual(shared, []);
    }
  }
  const proto = cloneJson(JSON.parse('{"__proto__":{"p":1}}')) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(proto), Object.prototype, "__proto__ stays data");
  assert.ok(Object.hasOwn(proto, "__proto__"));
});

Deno.test("sameAs: a value has the content of its snapshot in any key order, nothing else", () => {
  const sameJson = (value: unknown, template: unknown) => sameAs(value, snapshot(template));
  const template = JSON.parse('{"count":1,"lang":"en","deep":{"list":[1,{"a":null}]}}');
  const equal: unknown[] = [
    { count: 1, lang: "en", deep: { list: [1, { a: null }] } },
    { lang: "en", deep: { list: [1, { a: null }] }, count: 1 }, // key order does not matter
    { count: 1, lang: "en", deep: { list: [1, Object.assign(Object.create(null), { a: null })] } },
    { count: -0 + 1, lang: "e" + "n", deep: { list: [1, { a: null }] } },
    // A property holding undefined is absent, as in JSON.
    { count: 1, lang: "en", deep: { list: [1, { a: null }] }, extra: undefined },
  ];
  for (const value of equal) assert.equal(sameJson(value, template), true, JSON.stringify(value));
  class Point {
    a = null;
  }
  const sparse = [1];
  sparse.length = 2;
  const different: unknown[] = [
    { count: 2, lang: "en", deep: { list: [1, { a: null }] } },
    { count: 1, lang: "en", deep: { list: [1, { a: null }, 3] } },
    { count: 1, lang: "en", deep: { list: [1, { a: null, b: 1 }] } },
    { count: 1, lang: "en", deep: { list: [1, {}] } },
    { count: 1, lang: "en" },
    { count: 1, lang: "en", deep: { list: [1, new Point()] } }, // not plain data
    { count: 1, lang: "en", deep: { list: sparse } },
    { count: "1", lang: "en", deep: { list: [1, { a: null }] } },
    { count: 1, lang: "en", deep: [1, { a: null }] },
    null,
    "text",
  ];
  for (const value of different) assert.equal(sameJson(value, template), false, String(value));
  assert.equal(sameJson(3, 3), true);
  assert.equal(sameJson(null, null), true);
  assert.equal(sameJson([0], [0]), true);
  assert.equal(sameJson([0], { 0: 0 }), false);
  assert.equal(sameJson({ 0: 0 }, [0]), false);
  assert.equal(
    sameJson({ x: undefined }, { y: 1 }),
    false,
    "an undefined key is not a missing one",
  );
  assert.equal(sameJson([undefined], [null]), false);
  // Dates compare by time (rule V2); what has no snapshot is always a change.
  assert.equal(sameJson({ at: new Date(5) }, { at: new Date(5) }), true);
  assert.equal(sameJson({ at: new Date(5) }, { at: new Date(6) }), false);
  assert.equal(sameJson({ at: "1970-01-01T00:00:00.005Z" }, { at: new Date(5) }), false);
  assert.equal(snapshot(new Point()), OPAQUE);
  assert.equal(sameJson(new Map(), new Map()), false);
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.equal(snapshot(cycle), OPAQUE);
  assert.equal(sameJson(cycle, cycle), false);
  // With a polluted Object.prototype, an own key equal to the inherited one is still a change.
  Object.defineProperty(Object.prototype, "polluted", {
    value: 1,
    enumerable: true,
    configurable: true,
  });
  try {
    assert.equal(sameJson({ a: 1, polluted: 1 }, JSON.parse('{"a":1}')), false);
  } finally {
    delete (Object.prototype as Record<string, unknown>).polluted;
  }
});

Deno.test("a session equal to its stored data but holding a class instance is still refused", async () => {
  type Data = { point: { x: number } };
  const storage = new MemorySessionStorage<Data>();
  storage.write("1", { point: { x: 1 } });
  const h = createHarness<Context & SessionFlavor<Data>>();
  h.bot.use(session({ storage }));
  class Point {
    x = 1;
  }
  h.bot.on("message", (ctx) => void (ctx.session.point = new Point()));
  await h.send(message(1));
  assert.equal(h.errors.length, 1);
  assert.ok(h.errors[0].error instanceof SessionValueError, String(h.errors[0]));
  assert.deepEqual(storage.read("1"), { point: { x: 1 } });
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
