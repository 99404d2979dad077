/**
 * The middleware talks to a storage on one of three paths: the memory
 * storage hands it clean data (the internal data path), sessionkit's
 * networked storages hand it their JSON text (the internal text path), any
 * other storage goes through the public `StorageAdapter` /
 * `ConditionalStorage` methods. All paths must behave the same: change
 * detection, conflict detection, merges, deletes, copies. Each scenario runs
 * on a `MemorySessionStorage` (data path), on a wrapper that gives the same
 * storage a text path (as Redis, PostgreSQL and Deno KV have), and on a
 * wrapper that exposes only its public methods.
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
import { provideTextAccess, textAccessOf } from "../src/text.ts";
import { dataAccessOf } from "../src/data.ts";
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

/** The public methods of `inner`, plus a text path over them. */
function withTextPath(inner: MemorySessionStorage<Data>): Storage {
  const storage = publicOnly(inner);
  provideTextAccess(storage, {
    exact: true,
    read: async (key) => {
      const { value, version } = await inner.readVersioned(key);
      return { text: value === undefined ? null : JSON.stringify(value), version };
    },
    write: (key, text, expected) =>
      expected === undefined
        ? void inner.write(key, JSON.parse(text))
        : inner.writeIfVersion(key, JSON.parse(text), expected),
    delete: (key, expected) =>
      expected === undefined ? (inner.delete(key), true) : inner.deleteIfVersion(key, expected),
  });
  return storage;
}

const paths = [
  ["data path (MemorySessionStorage)", (inner: MemorySessionStorage<Data>) => inner],
  ["text path (as the networked storages)", withTextPath],
  ["public methods (a third-party storage)", publicOnly],
] as const;

Deno.test("all three storage paths are really exercised", () => {
  const inner = new MemorySessionStorage<Data>();
  const [data, text, public_] = paths.map(([, make]) => make(inner));
  assert.ok(dataAccessOf(data), "memory storage has the data path");
  assert.equal(textAccessOf(data), undefined, "and no text path");
  assert.ok(textAccessOf(text), "the text wrapper has the text path");
  assert.equal(dataAccessOf(text), undefined, "and no data path");
  assert.equal(textAccessOf(public_), undefined, "the public wrapper has neither");
  assert.equal(dataAccessOf(public_), undefined);
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
