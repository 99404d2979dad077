/**
 * Rule A1 with `lock` (docs/semantics.md): the joined lease calls
 * (`acquireLeaseAndRead`, `saveAndReleaseLease`) are made only while no
 * method they stand for is overridden or replaced; otherwise the override
 * sees its calls. Through a real `Bot`, on a SQLite storage (a
 * `DriverStorage` whose driver has no joined calls, so the storage joins
 * them itself) and on a plain object storage that has joined calls of its
 * own.
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { Context } from "npm:grammy@^1.46";
import {
  AsyncDriverStorage,
  DriverStorage,
  type LockedStorage,
  MemorySessionStorage,
  session,
  type SessionFlavor,
} from "../mod.ts";
import { SqliteStorage } from "../storages/sqlite.ts";
import { joinedReadOf, joinedSaveOf } from "../src/locked_access.ts";
import { createHarness, message } from "./helpers/bot.ts";

type Data = { count: number };
type C = Context & SessionFlavor<Data>;

/** Which storage methods one locked update called, in order. */
async function callsOfOneUpdate(storage: object, spy: string[]): Promise<string[]> {
  const h = createHarness<C>();
  h.bot.use(session({ storage: storage as never, initial: () => ({ count: 0 }), lock: {} }));
  h.bot.on("message", (ctx) => void ctx.session.count++);
  await h.send(message(1));
  spy.length = 0;
  await h.send(message(1));
  assert.deepEqual(h.errors.map(String), []);
  return [...spy];
}

const METHODS = [
  "read",
  "readVersioned",
  "write",
  "writeIfVersion",
  "delete",
  "deleteIfVersion",
  "acquireLease",
  "releaseLease",
  "acquireLeaseAndRead",
  "saveAndReleaseLease",
] as const;

/** Wraps each method of `target` (own or inherited) on `host` to log its calls. */
function spyOn(host: object, target: object, log: string[]): () => void {
  const undo: (() => void)[] = [];
  for (const name of METHODS) {
    const original = (target as Record<string, (...a: unknown[]) => unknown>)[name];
    const had = Object.getOwnPropertyDescriptor(host, name);
    Object.defineProperty(host, name, {
      configurable: true,
      writable: true,
      value: function (this: unknown, ...args: unknown[]) {
        log.push(name);
        return original.apply(this, args);
      },
    });
    undo.push(() =>
      had === undefined
        ? delete (host as Record<string, unknown>)[name]
        : Object.defineProperty(host, name, had)
    );
  }
  return () => undo.forEach((u) => u());
}

Deno.test("A1 with lock: the joined lease calls only while nothing they stand for is overridden", async (t) => {
  const open = () => new SqliteStorage<Data>(new DatabaseSync(":memory:"), {});

  await t.step("a plain storage: the joined calls", async () => {
    const storage = open();
    const log: string[] = [];
    const undo = spyOn(storage, storage, log);
    // Own spies on every method: none is "overridden below" another.
    try {
      assert.deepEqual(await callsOfOneUpdate(storage, log), [
        "acquireLeaseAndRead",
        "saveAndReleaseLease",
      ]);
    } finally {
      undo();
    }
  });

  for (const name of ["readVersioned", "writeIfVersion", "acquireLease", "releaseLease"] as const) {
    await t.step(`${name} replaced on the instance: the separate calls, each seen`, async () => {
      const storage = open();
      const seen: string[] = [];
      const original = storage[name] as (...a: unknown[]) => unknown;
      Object.defineProperty(storage, name, {
        configurable: true,
        value: (...args: unknown[]) => {
          seen.push(name);
          return original.apply(storage, args);
        },
      });
      const joinedOf = name === "readVersioned" || name === "acquireLease"
        ? joinedReadOf
        : joinedSaveOf;
      assert.equal(joinedOf(storage), undefined);
      const other = joinedOf === joinedReadOf ? joinedSaveOf : joinedReadOf;
      assert.notEqual(other(storage), undefined, "the other joined call stays");
      const h = createHarness<C>();
      h.bot.use(session({ storage, initial: () => ({ count: 0 }), lock: {} }));
      h.bot.on("message", (ctx) => void ctx.session.count++);
      await h.send(message(1));
      await h.send(message(1));
      assert.deepEqual(h.errors.map(String), []);
      assert.ok(seen.length >= 2, `${name} was called ${seen.length} times`);
      assert.deepEqual(await storage.read("1"), { count: 2 });
    });
  }

  for (const proto of [DriverStorage.prototype, AsyncDriverStorage.prototype]) {
    await t.step(
      `readVersioned patched on ${proto.constructor.name}.prototype: the joined calls are off`,
      () => {
        const storage = open();
        const asyncStorage = new (class extends AsyncDriverStorage<Data> {})(
          { name: "x" } as never,
        );
        const before = [joinedReadOf(storage), joinedReadOf(asyncStorage)];
        const original = proto.readVersioned;
        proto.readVersioned = function (this: DriverStorage<unknown>, key: string) {
          return original.call(this, key);
        } as typeof original;
        try {
          assert.notEqual(before[1], undefined);
          assert.equal(joinedReadOf(asyncStorage), undefined);
          assert.notEqual(joinedSaveOf(asyncStorage), undefined, "a save does not read");
          if (proto === DriverStorage.prototype) {
            assert.notEqual(before[0], undefined);
            assert.equal(joinedReadOf(storage), undefined);
          }
        } finally {
          proto.readVersioned = original;
        }
        assert.notEqual(joinedReadOf(asyncStorage), undefined);
      },
    );
  }

  await t.step("a subclass that overrides a joined call keeps it, and it is called", async () => {
    const log: string[] = [];
    class Logging<T> extends SqliteStorage<T> {
      override acquireLeaseAndRead(key: string, owner: string, ttl: number) {
        log.push("mine");
        return super.acquireLeaseAndRead(key, owner, ttl);
      }
    }
    const storage = new Logging<Data>(new DatabaseSync(":memory:"), {});
    await callsOfOneUpdate(storage, []);
    assert.equal(log.length, 2, "the override ran for each update");
    assert.deepEqual(await storage.read("1"), { count: 2 });
  });

  await t.step("the memory storage is reached directly, never through joined calls", () => {
    assert.equal(joinedReadOf(new MemorySessionStorage()), undefined);
    assert.equal(joinedSaveOf(new MemorySessionStorage()), undefined);
  });

  await t.step("an object storage with joined calls of its own gets them", async () => {
    const inner = open();
    const log: string[] = [];
    const storage: LockedStorage<Data> & Record<string, unknown> = {
      read: (k: string) => inner.read(k),
      readVersioned: (k: string) => inner.readVersioned(k),
      write: (k: string, v: Data) => inner.write(k, v),
      writeIfVersion: (k: string, v: Data, e: string | null) => inner.writeIfVersion(k, v, e),
      delete: (k: string) => inner.delete(k),
      deleteIfVersion: (k: string, e: string | null) => inner.deleteIfVersion(k, e),
      acquireLease: (k: string, o: string, ttl: number) => inner.acquireLease(k, o, ttl),
      renewLease: (k: string, o: string, ttl: number) => inner.renewLease(k, o, ttl),
      releaseLease: (k: string, o: string) => inner.releaseLease(k, o),
      acquireLeaseAndRead: (k, o, ttl) => {
        log.push("acquireLeaseAndRead");
        return inner.acquireLeaseAndRead(k, o, ttl);
      },
      saveAndReleaseLease: (k, v, e, o) => {
        log.push("saveAndReleaseLease");
        return inner.saveAndReleaseLease(k, v, e, o);
      },
    };
    await callsOfOneUpdate(storage, log);
    assert.deepEqual(log, ["acquireLeaseAndRead", "saveAndReleaseLease"]);
    assert.deepEqual(await inner.read("1"), { count: 2 });
  });
});
