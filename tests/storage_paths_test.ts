/**
 * The middleware talks to a storage on one of two paths: sessionkit's own
 * storages hand it their JSON text (the internal text path), any other
 * storage goes through the public `StorageAdapter` / `ConditionalStorage`
 * methods. Both paths must behave the same: change detection, conflict
 * detection, merges, deletes. Each scenario runs on a `MemorySessionStorage`
 * (text path) and on a wrapper that exposes only its public methods.
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
import { textAccessOf } from "../src/text.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";
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

const paths = [
  ["text path (MemorySessionStorage)", (inner: MemorySessionStorage<Data>) => inner],
  ["public methods (a third-party storage)", publicOnly],
] as const;

Deno.test("both storage paths are really exercised", () => {
  const inner = new MemorySessionStorage<Data>();
  assert.ok(textAccessOf(paths[0][1](inner)), "memory storage has the text path");
  assert.equal(textAccessOf(paths[1][1](inner)), undefined, "the wrapper has not");
});

for (const [label, make] of paths) {
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
