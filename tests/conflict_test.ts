/**
 * Conflict detection and per-key locking, in one process: two bots with their
 * own session middleware on one shared MemorySessionStorage behave like two
 * processes (each middleware has its own in-process state). The multi-process
 * tests with real servers are in multiprocess_test.ts.
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
  SessionLockError,
} from "../mod.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";
import { addIncrements, race } from "./helpers/race.ts";

type Data = { count: number };
type C = Context & SessionFlavor<Data>;

Deno.test("conflict detection is on by default and reports the lost write", async () => {
  const storage = new MemorySessionStorage<Data>();
  storage.write("1", { count: 10 });
  const { a, b } = await race(storage, {});
  assert.deepEqual(b.errors, []);
  assert.equal(a.errors.length, 1);
  const err = a.errors[0].error;
  assert.ok(err instanceof SessionConflictError);
  assert.equal(err.key, "1");
  assert.match(err.message, /onConflict/);
  assert.deepEqual(storage.read("1"), { count: 11 }, "b's write stands; a's was refused");
});

Deno.test("conflict detection also guards new sessions", async () => {
  const storage = new MemorySessionStorage<Data>();
  const { a } = await race(storage, {});
  assert.ok(a.errors[0]?.error instanceof SessionConflictError);
  assert.deepEqual(storage.read("1"), { count: 1 });
});

Deno.test("a merge function combines both changes", async () => {
  const storage = new MemorySessionStorage<Data>();
  storage.write("1", { count: 10 });
  const { a, b } = await race(storage, { onConflict: addIncrements });
  assert.deepEqual([a.errors, b.errors], [[], []]);
  assert.deepEqual(storage.read("1"), { count: 12 });
});

Deno.test("a merge that keeps losing gives up after maxConflictRetries", async () => {
  const storage = new MemorySessionStorage<Data>();
  storage.write("1", { count: 0 });
  let merges = 0;
  const h = createHarness<C>();
  h.bot.use(session({
    storage,
    maxConflictRetries: 3,
    onConflict: (stored, mine, base) => {
      merges++;
      storage.write("1", { count: 100 + merges }); // someone always writes in between
      return addIncrements(stored, mine, base);
    },
  }));
  h.bot.on("message", async (ctx) => {
    const n = ctx.session.count;
    storage.write("1", { count: 50 });
    await sleep(1);
    ctx.session.count = n + 1;
  });
  await h.send(message(1));
  assert.equal(merges, 3);
  assert.ok(h.errors[0]?.error instanceof SessionConflictError);
  assert.match((h.errors[0].error as Error).message, /gave up after 3 merges/);
  assert.deepEqual(storage.read("1"), { count: 103 });
});

Deno.test('onConflict: "overwrite" is last-write-wins, as in grammY', async () => {
  const storage = new MemorySessionStorage<Data>();
  storage.write("1", { count: 10 });
  const { a, b } = await race(storage, { onConflict: "overwrite" });
  assert.deepEqual([a.errors, b.errors], [[], []]);
  assert.deepEqual(storage.read("1"), { count: 11 }, "a overwrote b's increment");
});

Deno.test("with lock, updates of one key run one at a time across middlewares", async () => {
  const storage = new MemorySessionStorage<Data>();
  const { a, b } = await race(storage, { lock: { ttl: 1000, wait: 2000 } });
  assert.deepEqual([a.errors, b.errors], [[], []]);
  assert.deepEqual(storage.read("1"), { count: 2 });
});

Deno.test("a waiter that cannot get the lease within wait fails clearly", async () => {
  const storage = new MemorySessionStorage<Data>();
  const { a, b } = await race(storage, { lock: { ttl: 1000, wait: 10 } });
  assert.deepEqual(a.errors, []);
  assert.equal(b.errors.length, 1);
  const err = b.errors[0].error;
  assert.ok(err instanceof SessionLockError);
  assert.equal(err.key, "1");
  assert.match(err.message, /within 10 ms/);
  // The holder may be this process: a handler that waits for a later update of its own key.
  assert.match(err.message, /in this process or another/);
  assert.match(err.message, /must not wait for a later update of its own key/);
  assert.deepEqual(storage.read("1"), { count: 1 });
});

Deno.test("a holder whose handler outlives the lease TTL keeps it alive", async () => {
  const storage = new MemorySessionStorage<Data>();
  const h = createHarness<C>();
  h.bot.use(session({ initial: () => ({ count: 0 }), storage, lock: { ttl: 90, wait: 50 } }));
  h.bot.on("message", async (ctx) => {
    await sleep(300); // more than three lease TTLs
    ctx.session.count++;
  });
  const other = createHarness<C>();
  other.bot.use(session({ initial: () => ({ count: 0 }), storage, lock: { ttl: 90, wait: 50 } }));
  other.bot.on("message", (ctx) => void ctx.session.count++);
  const slow = h.send(message(1));
  await sleep(150);
  await other.send(message(1)); // the lease is still held: this one must give up
  await slow;
  assert.deepEqual(h.errors, []);
  assert.ok(other.errors[0]?.error instanceof SessionLockError);
  assert.deepEqual(storage.read("1"), { count: 1 });
});

Deno.test("a holder that lost its lease finds out before writing", async () => {
  class Forgetful<T> extends MemorySessionStorage<T> {
    override renewLease(): Promise<boolean> {
      return Promise.resolve(false);
    }
  }
  const storage = new Forgetful<Data>();
  const h = createHarness<C>();
  h.bot.use(session({ initial: () => ({ count: 0 }), storage, lock: { ttl: 60, wait: 50 } }));
  h.bot.on("message", async (ctx) => {
    await sleep(150);
    ctx.session.count++;
  });
  await h.send(message(1));
  assert.ok(h.errors[0]?.error instanceof SessionLockError);
  assert.match((h.errors[0].error as Error).message, /lost/);
  assert.equal(storage.read("1"), undefined, "nothing was written");
});

Deno.test("with lazy sessions the lease is only taken if the session is touched", async () => {
  class Counting<T> extends MemorySessionStorage<T> {
    leases = 0;
    override acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
      this.leases++;
      return super.acquireLease(key, owner, ttl);
    }
  }
  const storage = new Counting<Data>();
  const h = createHarness<Context & LazySessionFlavor<Data>>();
  h.bot.use(lazySession({ initial: () => ({ count: 0 }), storage, lock: { ttl: 500 } }));
  h.bot.on("message", async (ctx) => {
    if (ctx.message.text === "touch") (await ctx.session).count++;
  });
  await h.send(message(1, "ignore"));
  assert.equal(storage.leases, 0);
  await h.send(message(1, "touch"));
  assert.equal(storage.leases, 1);
  assert.deepEqual(storage.read("1"), { count: 1 });
  // The lease was given up: another holder gets it at once.
  assert.equal(await storage.acquireLease("1", "someone-else", 1000), true);
});

Deno.test("other keys are never blocked by a held lease", async () => {
  const storage = new MemorySessionStorage<Data>();
  await storage.acquireLease("1", "a-dead-process", 60_000);
  const h = createHarness<C>();
  h.bot.use(session({ initial: () => ({ count: 0 }), storage, lock: { ttl: 500, wait: 100 } }));
  h.bot.on("message", (ctx) => void ctx.session.count++);
  await h.send(message(2));
  await h.send(message(1));
  assert.deepEqual(storage.read("2"), { count: 1 });
  assert.ok(h.errors[0]?.error instanceof SessionLockError);
  assert.equal(h.errors.length, 1);
});

Deno.test("storages without the capabilities keep working, and asking for them is a clear error", () => {
  const plain = {
    read: () => undefined,
    write: () => {},
    delete: () => {},
  };
  assert.doesNotThrow(() => session({ storage: plain }));
  assert.throws(() => session({ storage: plain, onConflict: "error" }), /conditional writes/);
  assert.throws(() => session({ storage: plain, lock: { ttl: 1000 } }), /leases/);
  assert.throws(() => session({ lock: { ttl: 0 } }), /lock.ttl must be a positive/);
  assert.doesNotThrow(() => session({ storage: plain, onConflict: "overwrite" }));
});
