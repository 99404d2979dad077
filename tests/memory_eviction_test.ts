/**
 * Eviction by `maxEntries` is not a conflict: a session evicted while its
 * update runs (other chats were written meanwhile, in the same process, by
 * nobody else) saves normally when the update ends, through a real grammY
 * `Bot`, with `session()`, `lazySession()` and `lock`. A real change of the
 * evicted key in between (a write or a delete) is still a conflict, and the
 * bookkeeping that tells the two apart is bounded.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  lazySession,
  type LazySessionFlavor,
  MemorySessionStorage,
  session,
  SessionConflictError,
  type SessionFlavor,
} from "../mod.ts";
import { createHarness, type Harness, message } from "./helpers/bot.ts";

type Data = { count: number };
type C = Context & SessionFlavor<Data>;
type L = Context & LazySessionFlavor<Data>;

/**
 * Chat 1 is stored (count 1), then its next update waits for a gate while
 * chats 2, 3 and 4 are handled: with `maxEntries: 2`, chat 1 is evicted
 * meanwhile. `between` runs after the other chats, before the gate opens.
 */
async function evictDuringUpdate<X extends Context>(
  h: Harness<X>,
  gate: PromiseWithResolvers<void>,
  between: () => Promise<void> | void = () => {},
): Promise<void> {
  await h.send(message(1));
  const slow = h.send(message(1, "/slow"));
  for (const chat of [2, 3, 4]) await h.send(message(chat));
  await between();
  gate.resolve();
  await slow;
}

function strictBot(storage: MemorySessionStorage<Data>, lock = false) {
  const h = createHarness<C>();
  const gate = Promise.withResolvers<void>();
  h.bot.use(session({
    initial: () => ({ count: 0 }),
    storage,
    ...(lock ? { lock: { ttl: 5000, wait: 5000 } } : {}),
  }));
  h.bot.command("slow", async (ctx) => {
    ctx.session.count++;
    await gate.promise;
  });
  h.bot.on("message", (ctx) => void ctx.session.count++);
  return { h, gate };
}

Deno.test("memory storage: a session evicted during its update saves normally", async (t) => {
  await t.step("session()", async () => {
    const storage = new MemorySessionStorage<Data>({ maxEntries: 2 });
    const { h, gate } = strictBot(storage);
    await evictDuringUpdate(h, gate, () => {
      assert.equal(storage.has("1"), false, "chat 1 was evicted while its update ran");
    });
    assert.deepEqual(h.errors.map((e) => String(e.error)), []);
    assert.deepEqual(storage.read("1"), { count: 2 }, "the evicted chat's update was saved");
    assert.equal(storage.size, 2);
  });

  await t.step("session() with lock", async () => {
    const storage = new MemorySessionStorage<Data>({ maxEntries: 2 });
    const { h, gate } = strictBot(storage, true);
    await evictDuringUpdate(h, gate);
    assert.deepEqual(h.errors.map((e) => String(e.error)), []);
    assert.deepEqual(storage.read("1"), { count: 2 });
  });

  await t.step("lazySession()", async () => {
    const storage = new MemorySessionStorage<Data>({ maxEntries: 2 });
    const h = createHarness<L>();
    const gate = Promise.withResolvers<void>();
    h.bot.use(lazySession({ initial: () => ({ count: 0 }), storage }));
    h.bot.command("slow", async (ctx) => {
      (await ctx.session).count++;
      await gate.promise;
    });
    h.bot.on("message", async (ctx) => void (await ctx.session).count++);
    await evictDuringUpdate(h, gate);
    assert.deepEqual(h.errors.map((e) => String(e.error)), []);
    assert.deepEqual(storage.read("1"), { count: 2 });
  });

  await t.step("with a TTL as well", async () => {
    const storage = new MemorySessionStorage<Data>({ maxEntries: 2, ttl: 60_000 });
    const { h, gate } = strictBot(storage);
    await evictDuringUpdate(h, gate);
    assert.deepEqual(h.errors.map((e) => String(e.error)), []);
    assert.deepEqual(storage.read("1"), { count: 2 });
  });
});

Deno.test("memory storage: a real change of an evicted session is still a conflict", async (t) => {
  await t.step("another writer stored the key after the eviction", async () => {
    const storage = new MemorySessionStorage<Data>({ maxEntries: 2 });
    const { h, gate } = strictBot(storage);
    const other = createHarness<C>();
    other.bot.use(session({ initial: () => ({ count: 0 }), storage }));
    other.bot.on("message", (ctx) => void (ctx.session.count += 10));
    // The other writer finds nothing (evicted) and starts from initial.
    await evictDuringUpdate(h, gate, () => other.send(message(1)));
    assert.equal(h.errors.length, 1);
    assert.ok(h.errors[0].error instanceof SessionConflictError);
    assert.deepEqual(storage.read("1"), { count: 10 }, "the other writer's session stays");
  });

  await t.step("the key was deleted after the eviction", async () => {
    const storage = new MemorySessionStorage<Data>({ maxEntries: 2 });
    const { h, gate } = strictBot(storage);
    await evictDuringUpdate(h, gate, () => storage.delete("1"));
    assert.equal(h.errors.length, 1);
    assert.ok(h.errors[0].error instanceof SessionConflictError);
    assert.equal(storage.read("1"), undefined);
  });
});

Deno.test("memory storage: conditional calls on an evicted, unchanged session", async (t) => {
  await t.step(
    "the first write expecting the evicted version lands, a second does not",
    async () => {
      const storage = new MemorySessionStorage<Data>({ maxEntries: 1 });
      storage.write("a", { count: 1 });
      const { version } = await storage.readVersioned("a");
      storage.write("b", { count: 1 }); // evicts a
      assert.equal(storage.has("a"), false);
      assert.deepEqual(await storage.readVersioned("a"), { value: undefined, version: null });
      const next = await storage.writeIfVersion("a", { count: 2 }, version);
      assert.equal(typeof next, "string");
      assert.notEqual(next, version);
      assert.deepEqual(storage.read("a"), { count: 2 });
      assert.equal(await storage.writeIfVersion("a", { count: 3 }, version), null);
      assert.deepEqual(storage.read("a"), { count: 2 });
    },
  );

  await t.step(
    "a write expecting nothing stored also lands, and then the old version is stale",
    async () => {
      const storage = new MemorySessionStorage<Data>({ maxEntries: 1 });
      storage.write("a", { count: 1 });
      const { version } = await storage.readVersioned("a");
      storage.write("b", { count: 1 });
      assert.equal(typeof await storage.writeIfVersion("a", { count: 5 }, null), "string");
      storage.write("b", { count: 2 }); // evicts a again, at its new version
      assert.equal(await storage.writeIfVersion("a", { count: 9 }, version), null);
    },
  );

  await t.step("a conditional delete expecting the evicted version lands", async () => {
    const storage = new MemorySessionStorage<Data>({ maxEntries: 1 });
    storage.write("a", { count: 1 });
    const { version } = await storage.readVersioned("a");
    storage.write("b", { count: 1 });
    assert.equal(await storage.deleteIfVersion("a", version!), true);
    assert.equal(await storage.writeIfVersion("a", { count: 2 }, version), null);
  });

  await t.step("an unconditional write in between makes the old version stale", async () => {
    const storage = new MemorySessionStorage<Data>({ maxEntries: 1 });
    storage.write("a", { count: 1 });
    const { version } = await storage.readVersioned("a");
    storage.write("b", { count: 1 });
    storage.write("a", { count: 7 });
    assert.equal(await storage.writeIfVersion("a", { count: 2 }, version), null);
    assert.deepEqual(storage.read("a"), { count: 7 });
  });

  await t.step("the evicted versions kept are bounded (then a write conflicts)", async () => {
    const storage = new MemorySessionStorage<Data>({ maxEntries: 1 });
    storage.write("a", { count: 1 });
    const { version } = await storage.readVersioned("a");
    // Far more evictions than are remembered.
    for (let i = 0; i < 5000; i++) storage.write(`k${i}`, { count: i });
    assert.equal(storage.size, 1);
    assert.equal(await storage.writeIfVersion("a", { count: 2 }, version), null);
  });
});
