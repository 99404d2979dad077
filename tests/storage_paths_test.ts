/**
 * The middleware reaches every storage through its public methods
 * (docs/semantics.md, rule A1), so sessionkit's own storage and a wrapper
 * that exposes nothing but those methods (as a third-party storage, or a
 * user's wrapper around a sessionkit storage, would) must behave the same:
 * change detection, conflict detection, merges, deletes, copies. Each
 * scenario runs on a `MemorySessionStorage` and on such a wrapper around
 * one. That every call reaches overridden methods is checked, per storage,
 * by tests/storage_subclass_test.ts. Also `MemorySessionStorage.readAll()`,
 * which grammY's memory storage still has.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  type ConditionalStorage,
  MemorySessionStorage,
  session,
  SessionConflictError,
  type SessionFlavor,
  type StorageAdapter,
} from "../mod.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";
import { FakeTime } from "./helpers/clock.ts";
import { addIncrements, race } from "./helpers/race.ts";

type Data = { count: number };
type C = Context & SessionFlavor<Data>;
type Storage = StorageAdapter<Data> & ConditionalStorage<Data>;

/** A storage with only the public methods of `inner`. */
function publicOnly(inner: MemorySessionStorage<Data>): Storage {
  return {
    read: (key) => inner.read(key),
    write: (key, value) => inner.write(key, value),
    delete: (key) => inner.delete(key),
    readVersioned: (key) => inner.readVersioned(key),
    writeIfVersion: (key, value, expected) => inner.writeIfVersion(key, value, expected),
    deleteIfVersion: (key, expected) => inner.deleteIfVersion(key, expected),
  };
}

const storages = [
  ["MemorySessionStorage", (inner: MemorySessionStorage<Data>) => inner],
  ["a wrapper with only the public methods", publicOnly],
] as const;

for (const [label, make] of storages) {
  Deno.test(`${label}: unchanged sessions are not written, changes are`, async () => {
    const inner = new MemorySessionStorage<Data>();
    inner.write("1", { count: 5 });
    const storage = make(inner);
    const h = createHarness<C>();
    h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
    h.bot.command("read", (ctx) => void ctx.session.count);
    h.bot.command("inc", (ctx) => void ctx.session.count++);
    const before = (await inner.readVersioned("1")).version;
    await h.send(message(1, "/read"));
    assert.equal((await inner.readVersioned("1")).version, before, "read only: nothing written");
    await h.send(message(1, "/inc"));
    await h.send(message(1, "/inc"));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(inner.read("1"), { count: 7 });
  });

  Deno.test(`${label}: a new chat is stored only once it leaves its initial value`, async () => {
    const inner = new MemorySessionStorage<Data>();
    const h = createHarness<C>();
    h.bot.use(session({ initial: () => ({ count: 0 }), storage: make(inner) }));
    h.bot.command("read", (ctx) => void ctx.session.count);
    h.bot.command("same", (ctx) => void (ctx.session = { count: 0 }));
    h.bot.command("inc", (ctx) => void ctx.session.count++);
    await h.send(message(1, "/read"));
    await h.send(message(1, "/same"));
    assert.equal(inner.read("1"), undefined, "equal to the initial value: not stored");
    await h.send(message(1, "/inc"));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(inner.read("1"), { count: 1 });
  });

  Deno.test(`${label}: storage keeps a copy, never the handler's objects`, async () => {
    const inner = new MemorySessionStorage<Data & { tags?: string[] }>();
    const h = createHarness<Context & SessionFlavor<Data & { tags?: string[] }>>();
    h.bot.use(session({ initial: () => ({ count: 0 }), storage: make(inner as never) }));
    let kept: (Data & { tags?: string[] }) | undefined;
    h.bot.on("message", (ctx) => {
      ctx.session.tags = ["a"];
      kept = ctx.session;
    });
    await h.send(message(1));
    kept!.count = 99;
    kept!.tags!.push("b");
    assert.deepEqual(inner.read("1"), { count: 0, tags: ["a"] });
    await h.send(message(1));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(inner.read("1"), { count: 0, tags: ["a"] }, "the next update read the copy");
  });

  Deno.test(`${label}: a conflicting write is refused by default`, async () => {
    const inner = new MemorySessionStorage<Data>();
    inner.write("1", { count: 10 });
    const { a, b } = await race(make(inner), {});
    assert.deepEqual(b.errors, []);
    assert.ok(a.errors[0]?.error instanceof SessionConflictError);
    assert.deepEqual(inner.read("1"), { count: 11 });
  });

  Deno.test(`${label}: a merge function combines both changes`, async () => {
    const inner = new MemorySessionStorage<Data>();
    inner.write("1", { count: 10 });
    const { a, b } = await race(make(inner), { onConflict: addIncrements });
    assert.deepEqual([a.errors, b.errors], [[], []]);
    assert.deepEqual(inner.read("1"), { count: 12 });
  });

  Deno.test(`${label}: a delete that conflicts is refused, one that does not lands`, async () => {
    const inner = new MemorySessionStorage<Data>();
    inner.write("1", { count: 1 });
    const storage = make(inner);
    const h = createHarness<C>();
    h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
    h.bot.command("race", async (ctx) => {
      void ctx.session.count;
      inner.write("1", { count: 2 }); // someone else writes
      await sleep(1);
      ctx.session = undefined as unknown as Data;
    });
    h.bot.command("drop", (ctx) => void (ctx.session = undefined as unknown as Data));
    await h.send(message(1, "/race"));
    assert.ok(h.errors[0]?.error instanceof SessionConflictError);
    assert.deepEqual(inner.read("1"), { count: 2 });
    await h.send(message(1, "/drop"));
    assert.equal(h.errors.length, 1);
    assert.equal(inner.read("1"), undefined);
  });
}

Deno.test("MemorySessionStorage: readAll() lists copies of the unexpired sessions, as grammY's does", () => {
  using clock = new FakeTime();
  const storage = new MemorySessionStorage<{ n: number; list: number[] }>(1000);
  assert.deepEqual(storage.readAll(), []);
  storage.write("a", { n: 1, list: [1] });
  clock.tick(600);
  storage.write("b", { n: 2, list: [2] });
  const all = storage.readAll();
  assert.ok(Array.isArray(all), "an array, as grammY's readAll returns");
  assert.deepEqual(all, storage.readAllValues());
  assert.deepEqual(all.map((v) => v.n).sort(), [1, 2]);
  all[0].list.push(99); // a copy: the stored session is unchanged
  assert.deepEqual(storage.readAll().map((v) => v.list).sort(), [[1], [2]]);
  clock.tick(500); // "a" expired, "b" did not
  assert.deepEqual(storage.readAll(), [{ n: 2, list: [2] }]);
});
