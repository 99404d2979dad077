/**
 * The direct way into a plain MemorySessionStorage (src/memory_access.ts) is
 * taken only while no public method could have been replaced: a subclass,
 * or an instance with a replaced method, gets every call through its public
 * methods (rule A1), with the same outcome.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { MemorySessionStorage, session, type SessionFlavor, SessionValueError } from "../mod.ts";
import { memoryAccessOf } from "../src/memory_access.ts";
import { DriverStorage } from "../storages/shared/driver_storage.ts";
import { createHarness, message } from "./helpers/bot.ts";

type Data = { count: number; note?: unknown };
type C = Context & SessionFlavor<Data>;

/** Overrides a method (doing the same), so the public methods are used. */
class Subclass extends MemorySessionStorage<Data> {
  override readVersioned(key: string) {
    return super.readVersioned(key);
  }
}

Deno.test("memory storage: the direct way in only for a plain, unchanged instance", () => {
  assert.ok(memoryAccessOf(new MemorySessionStorage()), "a plain instance has it");
  assert.equal(memoryAccessOf(new Subclass()), undefined, "a subclass has not");
  const names = [
    "read",
    "write",
    "delete",
    "readVersioned",
    "writeIfVersion",
    "deleteIfVersion",
  ] as const;
  for (const name of names) {
    const patched = new MemorySessionStorage<Data>();
    const original = patched[name].bind(patched);
    Object.defineProperty(patched, name, { value: original, configurable: true });
    assert.equal(memoryAccessOf(patched), undefined, `an instance with its own ${name}`);
  }
  assert.equal(memoryAccessOf({}), undefined);
  class Empty extends MemorySessionStorage<Data> {}
  assert.ok(memoryAccessOf(new Empty()), "a subclass that replaces nothing behaves the same");
});

Deno.test("memory storage: methods replaced after the middleware was made, or on the prototype, see every call", async (t) => {
  const calls: string[] = [];
  await t.step("an instance method replaced after session()", async () => {
    const storage = new MemorySessionStorage<Data>();
    const h = createHarness<C>();
    h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
    h.bot.on("message", (ctx) => void ctx.session.count++);
    const readVersioned = storage.readVersioned.bind(storage);
    const writeIfVersion = storage.writeIfVersion.bind(storage);
    storage.readVersioned = (key) => (calls.push("readVersioned"), readVersioned(key));
    storage.writeIfVersion = (key, value, expected) => (
      calls.push("writeIfVersion"), writeIfVersion(key, value, expected)
    );
    await h.send(message(1));
    assert.deepEqual(calls.splice(0), ["readVersioned", "writeIfVersion"]);
    assert.deepEqual(storage.read("1"), { count: 1 });
  });
  await t.step("a method patched on the prototype", async () => {
    const proto = MemorySessionStorage.prototype as unknown as Record<string, unknown>;
    const original = proto.writeIfVersion as (...a: unknown[]) => unknown;
    // Inherited from DriverStorage: restoring means removing the patch again.
    const own = Object.getOwnPropertyDescriptor(proto, "writeIfVersion");
    proto.writeIfVersion = function (this: unknown, ...args: unknown[]) {
      calls.push("writeIfVersion");
      return original.apply(this, args);
    };
    try {
      const storage = new MemorySessionStorage<Data>();
      assert.equal(memoryAccessOf(storage), undefined);
      const h = createHarness<C>();
      h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
      h.bot.on("message", (ctx) => void ctx.session.count++);
      await h.send(message(1));
      assert.deepEqual(calls.splice(0), ["writeIfVersion"]);
    } finally {
      if (own === undefined) delete proto.writeIfVersion;
      else Object.defineProperty(proto, "writeIfVersion", own);
    }
  });
  await t.step("a method inherited from DriverStorage, patched on its prototype", async () => {
    const proto = DriverStorage.prototype as unknown as Record<string, unknown>;
    const originals = { readVersioned: proto.readVersioned, writeIfVersion: proto.writeIfVersion };
    for (const name of ["readVersioned", "writeIfVersion"] as const) {
      const original = originals[name] as (...a: unknown[]) => unknown;
      proto[name] = function (this: unknown, ...args: unknown[]) {
        calls.push(name);
        return original.apply(this, args);
      };
    }
    try {
      const storage = new MemorySessionStorage<Data>();
      assert.equal(memoryAccessOf(storage), undefined);
      const h = createHarness<C>();
      h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
      h.bot.on("message", (ctx) => void ctx.session.count++);
      await h.send(message(1));
      assert.deepEqual(calls.splice(0), ["readVersioned", "writeIfVersion"]);
      assert.deepEqual(storage.read("1"), { count: 1 });
    } finally {
      Object.assign(proto, originals);
    }
    assert.ok(memoryAccessOf(new MemorySessionStorage()), "restored: the direct way is back");
  });
  await t.step("read and write of DriverStorage, which the class's own call by super", async () => {
    // Review finding: patching them went unnoticed, as the class's own
    // read/write (type-narrowing overrides) were all that was compared.
    const proto = DriverStorage.prototype as unknown as Record<string, unknown>;
    const originals = { read: proto.read, write: proto.write };
    for (const name of ["read", "write"] as const) {
      const original = originals[name] as (...a: unknown[]) => unknown;
      proto[name] = function (this: unknown, ...args: unknown[]) {
        calls.push(name);
        return original.apply(this, args);
      };
    }
    try {
      const storage = new MemorySessionStorage<Data>();
      assert.equal(memoryAccessOf(storage), undefined);
      const h = createHarness<C>();
      h.bot.use(session({ initial: () => ({ count: 0 }), storage, onConflict: "overwrite" }));
      h.bot.on("message", (ctx) => void ctx.session.count++);
      await h.send(message(1));
      assert.deepEqual(calls.splice(0), ["read", "write"]);
    } finally {
      Object.assign(proto, originals);
    }
    assert.ok(memoryAccessOf(new MemorySessionStorage()), "restored: the direct way is back");
  });
});

Deno.test("memory storage: the direct way in and the public methods share one store", async () => {
  const storage = new MemorySessionStorage<Data>({ maxEntries: 10, ttl: 60_000 });
  const access = memoryAccessOf(storage)!;
  const version = access.write("1", { count: 1 }, null);
  assert.equal(typeof version, "string");
  assert.deepEqual(await storage.readVersioned("1"), { value: { count: 1 }, version });
  storage.write("2", { count: 2 });
  assert.deepEqual(access.read("2")?.payload, { count: 2 });
  assert.equal(access.write("1", { count: 9 }, "stale"), null);
  assert.equal(access.delete("1", version), true);
  assert.equal(storage.has("1"), false);
});

Deno.test("memory storage: the same outcome with and without the direct way in", async (t) => {
  for (const make of [() => new MemorySessionStorage<Data>(), () => new Subclass()]) {
    const storage = make();
    const label = storage instanceof Subclass ? "subclass" : "plain";
    await t.step(label, async () => {
      const h = createHarness<C>();
      h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
      h.bot.command("bad", (ctx) => void (ctx.session.note = new Date(0)));
      h.bot.command("reset", (ctx) => void (ctx.session = undefined as never));
      h.bot.on("message", (ctx) => void ctx.session.count++);
      await h.send(message(1));
      await h.send(message(1));
      assert.deepEqual(storage.read("1"), { count: 2 });
      // Another process writes in between: a conflict, as with the public methods.
      const other = createHarness<C>();
      other.bot.use(session({ initial: () => ({ count: 0 }), storage }));
      other.bot.on("message", (ctx) => void (ctx.session.count += 10));
      const gate = Promise.withResolvers<void>();
      const slow = createHarness<C>();
      slow.bot.use(session({ initial: () => ({ count: 0 }), storage }));
      slow.bot.on("message", async (ctx) => {
        ctx.session.count++;
        await gate.promise;
      });
      const pending = slow.send(message(1));
      await other.send(message(1));
      gate.resolve();
      await pending;
      assert.equal(slow.errors.length, 1, "the stale update conflicted");
      assert.deepEqual(storage.read("1"), { count: 12 });
      // A value JSON cannot hold is refused, nothing written.
      await h.send(message(1, "/bad"));
      assert.ok(h.errors.at(-1)?.error instanceof SessionValueError);
      assert.deepEqual(storage.read("1"), { count: 12 });
      // Deleting, and handlers never holding the stored data.
      await h.send(message(1, "/reset"));
      assert.equal(storage.read("1"), undefined);
      await h.send(message(1));
      const held = storage.read("1")!;
      held.count = 99;
      assert.deepEqual(storage.read("1"), { count: 1 });
    });
  }
});
