/** enhanceStorage: grammY's stored format with its known defects fixed. */
// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { enhanceStorage as grammyEnhance, session as grammySession } from "npm:grammy@^1.46";
import {
  type Enhance,
  enhanceStorage,
  isConditionalStorage,
  isLeaseStorage,
  lazySession,
  type LazySessionFlavor,
  MemorySessionStorage,
  session,
  SessionConflictError,
  SessionError,
  type SessionFlavor,
  type StorageAdapter,
} from "../mod.ts";
import { FakeTime } from "./helpers/clock.ts";
import { createHarness, type Harness, message } from "./helpers/bot.ts";
import { addIncrements, race } from "./helpers/race.ts";

Deno.test("enhanceStorage: migrations run in numeric order, 1.5 between 1 and 2", async () => {
  const raw = new MemorySessionStorage<Enhance<any>>();
  const ran: number[] = [];
  const storage = enhanceStorage<string[]>({
    storage: raw,
    migrations: {
      2: (old: string[]) => (ran.push(2), [...old, "two"]),
      10: (old: string[]) => (ran.push(10), [...old, "ten"]),
      1: (old: string[]) => (ran.push(1), [...old, "one"]),
      1.5: (old: string[]) => (ran.push(1.5), [...old, "one-and-a-half"]),
    },
  });
  raw.write("a", { v: 1, __d: ["start"] });
  assert.deepEqual(await storage.read("a"), ["start", "one-and-a-half", "two", "ten"]);
  assert.deepEqual(ran, [1.5, 2, 10]);
  // Written back once at the newest version: the next read migrates nothing.
  assert.deepEqual(raw.read("a"), { v: 10, __d: ["start", "one-and-a-half", "two", "ten"] });
  ran.length = 0;
  await storage.read("a");
  assert.deepEqual(ran, []);
  // Unversioned data (stored without enhanceStorage) runs every migration.
  raw.write("plain", ["p"] as unknown as Enhance<unknown>);
  assert.deepEqual(await storage.read("plain"), ["p", "one", "one-and-a-half", "two", "ten"]);
});

Deno.test("enhanceStorage: data from a newer version is a clear error, never downgraded", async () => {
  const raw = new MemorySessionStorage<Enhance<any>>();
  const storage = enhanceStorage({ storage: raw, migrations: { 1: (x) => x, 2: (x) => x } });
  raw.write("k", { v: 3, __d: { fromTheFuture: true } });
  await assert.rejects(
    async () => await storage.read("k"),
    (err) =>
      err instanceof SessionError && err.key === "k" && /version 3.*newest.*2/s.test(err.message),
  );
  assert.deepEqual(raw.read("k"), { v: 3, __d: { fromTheFuture: true } });
});

Deno.test("enhanceStorage: user data with a __d field is not mistaken for an envelope", async () => {
  const raw = new MemorySessionStorage<Enhance<any>>();
  const storage = enhanceStorage<unknown>({ storage: raw, migrations: { 1: (x) => x } });
  const data = { __d: "mine", other: 1 };
  raw.write("k", data as unknown as Enhance<unknown>);
  assert.deepEqual(await storage.read("k"), data);
  await storage.write("k2", data);
  assert.deepEqual(raw.read("k2"), { __d: data, v: 1 });
  assert.deepEqual(await storage.read("k2"), data);
});

Deno.test("enhanceStorage: expiry, sliding renewal and unwrapped listings", async () => {
  using clock = new FakeTime();
  const raw = new MemorySessionStorage<Enhance<any>>();
  const storage = enhanceStorage<{ n: number }>({ storage: raw, millisecondsToLive: 1000 });
  await storage.write("a", { n: 1 });
  await storage.write("b", { n: 2 });
  assert.equal(raw.read("a")!.e, Date.now() + 1500, "stored 1.5 TTL ahead");
  clock.tick(300);
  await storage.read("a"); // more than the TTL left: no rewrite
  assert.equal(raw.read("a")!.e, Date.now() + 1200);
  clock.tick(400);
  await storage.read("a"); // the TTL or less left: renewed
  assert.equal(raw.read("a")!.e, Date.now() + 1500);
  clock.tick(800); // b is 1500 ms old, a was read 800 ms ago
  assert.equal(await storage.read("b"), undefined);
  assert.equal(await storage.has!("b"), false);
  assert.equal(await storage.has!("a"), true);
  const keys: string[] = [];
  for await (const key of storage.readAllKeys!()) keys.push(key);
  assert.deepEqual(keys, ["a"]);
  const entries: [string, unknown][] = [];
  for await (const entry of storage.readAllEntries!()) entries.push(entry);
  assert.deepEqual(entries, [["a", { n: 1 }]]);
  const values: unknown[] = [];
  for await (const value of storage.readAllValues!()) values.push(value);
  assert.deepEqual(values, [{ n: 1 }]);
});

Deno.test("enhanceStorage: reads what grammY's enhanceStorage wrote, and the other way round", async () => {
  const raw = new MemorySessionStorage<Enhance<any>>();
  const migrations = { 1: (x: { n: number }) => ({ ...x, migrated: true }) };
  const theirs = grammyEnhance<{ n: number }>({
    storage: raw,
    migrations,
    millisecondsToLive: 60_000,
  });
  const ours = enhanceStorage<{ n: number }>({
    storage: raw,
    migrations,
    millisecondsToLive: 60_000,
  });
  await theirs.write("g", { n: 1 });
  assert.deepEqual(await ours.read("g"), { n: 1 });
  await ours.write("s", { n: 2 });
  assert.deepEqual(await theirs.read("s"), { n: 2 });
});

Deno.test("enhanceStorage: works under session() through a real Bot", async () => {
  type C = Context & SessionFlavor<{ count: number }>;
  const raw = new MemorySessionStorage<Enhance<any>>();
  const h = createHarness<C>();
  h.bot.use(session({
    initial: () => ({ count: 0 }),
    storage: enhanceStorage({ storage: raw, millisecondsToLive: 60_000 }),
  }));
  h.bot.on("message", (ctx) => ctx.session.count++);
  await h.send(message(1));
  await h.send(message(1));
  assert.deepEqual(raw.read("1")!.__d, { count: 2 });
});

Deno.test("grammY compatibility: storages work both ways", async (t) => {
  await t.step("sessionkit's MemorySessionStorage inside grammY's session()", async () => {
    type C = Context & SessionFlavor<{ count: number }>;
    const storage = new MemorySessionStorage<{ count: number }>();
    const h = createHarness<C>();
    h.bot.use(grammySession({ initial: () => ({ count: 0 }), storage }));
    h.bot.on("message", (ctx) => ctx.session.count++);
    await h.send(message(1));
    await h.send(message(1));
    assert.deepEqual(storage.read("1"), { count: 2 });
  });
  await t.step("an adapter written for grammY inside sessionkit's session()", async () => {
    type C = Context & SessionFlavor<{ count: number }>;
    const map = new Map<string, { count: number }>();
    const h = createHarness<C>();
    h.bot.use(session({
      initial: () => ({ count: 0 }),
      storage: {
        read: (key) => map.get(key),
        write: (key, value) => void map.set(key, value),
        delete: (key) => void map.delete(key),
      },
    }));
    h.bot.on("message", (ctx) => ctx.session.count++);
    await h.send(message(1));
    await h.send(message(1));
    assert.deepEqual(map.get("1"), { count: 2 });
  });
  await t.step(
    "data stored by grammY's session is read after the switch (same default key)",
    async () => {
      type C = Context & SessionFlavor<{ count: number }>;
      const storage = new MemorySessionStorage<{ count: number }>();
      const before = createHarness<C>();
      before.bot.use(grammySession({ initial: () => ({ count: 0 }), storage }));
      before.bot.on("message", (ctx) => ctx.session.count++);
      await before.send(message(-1005));
      const after = createHarness<C>();
      after.bot.use(session({ initial: () => ({ count: 0 }), storage }));
      after.bot.on("message", (ctx) => ctx.reply(String(++ctx.session.count)));
      await after.send(message(-1005));
      assert.deepEqual(after.replies(), ["2"]);
    },
  );
});

// ---------------------------------------------------------------------------
// Issue 15, defect 9: enhanceStorage lost data.

type Count = { count: number };
type CountContext = Context & SessionFlavor<Count>;

/**
 * A memory storage that counts writes and can let "another process" write
 * right after one of its reads, before the reader gets to write anything.
 */
class WatchedStorage<S> extends MemorySessionStorage<S> {
  writes = 0;
  /** Runs once, after the next read or versioned read. */
  afterRead: (() => void) | undefined;

  #fire(): void {
    const hook = this.afterRead;
    this.afterRead = undefined;
    hook?.();
  }

  override read(key: string): S | undefined {
    const value = super.read(key);
    this.#fire();
    return value;
  }

  override async readVersioned(key: string) {
    const result = await super.readVersioned(key);
    this.#fire();
    return result;
  }

  override write(key: string, value: S): void {
    this.writes++;
    super.write(key, value);
  }

  override writeIfVersion(key: string, value: S, expected: string | null) {
    this.writes++;
    return super.writeIfVersion(key, value, expected);
  }
}

/** A bot that replies with the count to every message, after incrementing it on "/inc". */
function countingBot(
  install: (h: Harness<CountContext>) => void,
): Harness<CountContext> {
  const h = createHarness<CountContext>();
  install(h);
  h.bot.command("inc", (ctx) => ctx.reply(String(++ctx.session.count)));
  h.bot.on("message", (ctx) => ctx.reply(String(ctx.session.count)));
  return h;
}

Deno.test("defect 9.1: without migrations, rewrites keep the stored migration version", async (t) => {
  using clock = new FakeTime();
  const ttl = 1000;
  /** Data stored by code with migrations up to 2, about to need a renewal. */
  const seeded = () => {
    const raw = new MemorySessionStorage<Enhance<any>>();
    raw.write("1", { v: 2, __d: { count: 5 }, e: Date.now() + 100 });
    return raw;
  };
  const ran: number[] = [];
  const newerCode = (raw: MemorySessionStorage<Enhance<any>>) =>
    enhanceStorage<Count & { three?: true }>({
      storage: raw,
      millisecondsToLive: ttl,
      migrations: {
        1: (x) => (ran.push(1), { count: x.count * 100 }),
        2: (x) => (ran.push(2), { count: x.count * 100 }),
        3: (x) => (ran.push(3), { ...x, three: true }),
      },
    });

  await t.step("sessionkit's session(): a read-only update renews, a change writes", async () => {
    const raw = seeded();
    const h = countingBot((h) =>
      h.bot.use(session({
        initial: () => ({ count: 0 }),
        storage: enhanceStorage<Count>({ storage: raw, millisecondsToLive: ttl }),
      }))
    );
    await h.send(message(1, "hi")); // read only: the envelope is renewed
    assert.deepEqual(raw.read("1"), { v: 2, __d: { count: 5 }, e: Date.now() + 1.5 * ttl });
    clock.tick(10);
    await h.send(message(1, "/inc")); // a conditional write after the read
    assert.deepEqual(raw.read("1"), { v: 2, __d: { count: 6 }, e: Date.now() + 1.5 * ttl });
    assert.deepEqual(h.replies(), ["5", "6"]);
    assert.deepEqual(h.errors, []);
    // The newer code runs only migration 3: the data is not migrated from scratch.
    ran.length = 0;
    assert.deepEqual(await newerCode(raw).read("1"), { count: 6, three: true });
    assert.deepEqual(ran, [3]);
  });

  await t.step("grammY's session() over it: plain reads and writes keep it too", async () => {
    const raw = seeded();
    const h = countingBot((h) =>
      h.bot.use(grammySession({
        initial: () => ({ count: 0 }),
        storage: enhanceStorage<Count>({ storage: raw, millisecondsToLive: ttl }),
      }))
    );
    await h.send(message(1, "hi"));
    assert.equal(raw.read("1")!.v, 2);
    await h.send(message(1, "/inc"));
    assert.deepEqual(raw.read("1"), { v: 2, __d: { count: 6 }, e: Date.now() + 1.5 * ttl });
    ran.length = 0;
    assert.deepEqual(await newerCode(raw).read("1"), { count: 6, three: true });
    assert.deepEqual(ran, [3]);
  });

  await t.step("data this wrapper never read is written without a version", async () => {
    const raw = seeded();
    const storage = enhanceStorage<Count>({ storage: raw });
    await storage.write("2", { count: 1 }); // a new session of code without migrations
    assert.deepEqual(raw.read("2"), { __d: { count: 1 } });
  });
});

Deno.test("defect 9.2: a session that is only read lives at least the TTL after its last use", async (t) => {
  const ttl = 1000;
  // Gaps between updates, all within the TTL; under the old rule (rewrite
  // when less than half is left) the session was gone at the second one.
  const gaps = [400, 700, 400, 1000, 999, 1, 600, 600];
  const scenario = async (
    install: (h: Harness<CountContext>, storage: StorageAdapter<Count>) => void,
  ) => {
    using clock = new FakeTime();
    const raw = new WatchedStorage<Enhance<any>>();
    const h = countingBot((h) =>
      install(h, enhanceStorage<Count>({ storage: raw, millisecondsToLive: ttl }))
    );
    await h.send(message(1, "/inc"));
    for (const gap of gaps) {
      clock.tick(gap);
      await h.send(message(1, "hi"));
    }
    const readOnlyWrites = raw.writes - 1;
    clock.tick(ttl * 1.5); // the documented upper bound after the last use
    await h.send(message(1, "hi"));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(h.replies(), ["1", ...gaps.map(() => "1"), "0"]);
    // Read-only updates rewrite at most once per TTL / 2 (6000 ms here: at most 12).
    assert.ok(readOnlyWrites <= 12 && readOnlyWrites < gaps.length, `${readOnlyWrites} writes`);
  };

  await t.step(
    "strict session()",
    () => scenario((h, storage) => h.bot.use(session({ initial: () => ({ count: 0 }), storage }))),
  );

  await t.step("lazySession()", async () => {
    using clock = new FakeTime();
    type L = Context & LazySessionFlavor<Count>;
    const raw = new MemorySessionStorage<Enhance<any>>();
    const h = createHarness<L>();
    h.bot.use(lazySession({
      initial: () => ({ count: 0 }),
      storage: enhanceStorage<Count>({ storage: raw, millisecondsToLive: ttl }),
    }));
    h.bot.command("inc", async (ctx) => ctx.reply(String(++(await ctx.session).count)));
    h.bot.on("message", async (ctx) => ctx.reply(String((await ctx.session).count)));
    await h.send(message(1, "/inc"));
    for (const gap of gaps) {
      clock.tick(gap);
      await h.send(message(1, "hi"));
    }
    assert.deepEqual(h.replies(), ["1", ...gaps.map(() => "1")]);
  });

  await t.step("exactly at the bounds", async () => {
    using clock = new FakeTime();
    const raw = new MemorySessionStorage<Enhance<any>>();
    const storage = enhanceStorage<Count>({ storage: raw, millisecondsToLive: ttl });
    await storage.write("k", { count: 1 });
    for (let i = 0; i < 5; i++) {
      clock.tick(ttl); // exactly the TTL after the last use: still there
      assert.deepEqual(await storage.read("k"), { count: 1 });
    }
    clock.tick(ttl * 1.5); // 1.5 TTL after the last use: gone
    assert.equal(await storage.read("k"), undefined);
  });

  await t.step("a read-only session is rewritten once every TTL / 2", async () => {
    using clock = new FakeTime();
    const raw = new WatchedStorage<Enhance<any>>();
    const storage = enhanceStorage<Count>({ storage: raw, millisecondsToLive: ttl });
    await storage.write("k", { count: 1 });
    for (let i = 0; i < 20; i++) {
      clock.tick(100);
      await storage.read("k");
    }
    assert.equal(raw.writes, 1 + 4); // the write, then renewals at 500, 1000, 1500, 2000 ms
  });
});

Deno.test("defect 9.2: the TTL scenario on grammY's own session() and enhanceStorage", async (t) => {
  const ttl = 1000;
  // "/inc" at 0, read-only updates at 400 and 1100 ms (1100 ms after the last
  // write, 700 ms after the last read), then a probe `probe` ms later.
  const scenario = async (
    kit: "grammY" | "sessionkit",
    probe: number,
  ): Promise<{ replies: string[]; writes: number }> => {
    using clock = new FakeTime();
    const raw = new WatchedStorage<Enhance<any>>();
    const h = countingBot((h) => {
      if (kit === "grammY") {
        const storage = grammyEnhance<Count>({ storage: raw, millisecondsToLive: ttl });
        h.bot.use(grammySession({ initial: () => ({ count: 0 }), storage }));
      } else {
        const storage = enhanceStorage<Count>({ storage: raw, millisecondsToLive: ttl });
        h.bot.use(session({ initial: () => ({ count: 0 }), storage }));
      }
    });
    await h.send(message(1, "/inc"));
    clock.tick(400);
    await h.send(message(1, "hi"));
    clock.tick(700);
    await h.send(message(1, "hi"));
    const writes = raw.writes;
    clock.tick(probe);
    await h.send(message(1, "hi"));
    assert.deepEqual(h.errors, []);
    return { replies: h.replies(), writes };
  };

  await t.step("same outcome: the session survives read-only updates inside its TTL", async () => {
    for (const kit of ["grammY", "sessionkit"] as const) {
      assert.deepEqual((await scenario(kit, ttl)).replies, ["1", "1", "1", "1"], kit);
      assert.deepEqual((await scenario(kit, ttl * 1.5)).replies, ["1", "1", "1", "0"], kit);
    }
  });

  await t.step("documented differences: fewer writes, and a lifetime up to 1.5 TTL", async () => {
    // grammY writes after every update; sessionkit wrote the change and one renewal.
    assert.equal((await scenario("grammY", ttl)).writes, 3);
    assert.equal((await scenario("sessionkit", ttl)).writes, 2);
    // grammY's session is gone just after the TTL; sessionkit's may live longer.
    assert.deepEqual((await scenario("grammY", ttl + 1)).replies.at(-1), "0");
    assert.deepEqual((await scenario("sessionkit", ttl + 1)).replies.at(-1), "1");
  });
});

Deno.test("defect 9.3: the wrapped storage's conditional writes and leases are kept", async (t) => {
  await t.step(
    "capabilities are passed on, and only where the wrapped storage has them",
    async () => {
      const memory = enhanceStorage<Count>({ storage: new MemorySessionStorage<Enhance<Count>>() });
      assert.ok(isConditionalStorage(memory));
      assert.ok(isLeaseStorage(memory));
      const map = new Map<string, Enhance<Count>>();
      const plain = enhanceStorage<Count>({
        storage: {
          read: (key) => map.get(key),
          write: (key, value) => void map.set(key, value),
          delete: (key) => void map.delete(key),
        },
        millisecondsToLive: 1000,
      });
      assert.ok(!isConditionalStorage(plain));
      assert.ok(!isLeaseStorage(plain));
      await plain.write("k", { count: 1 });
      assert.deepEqual(await plain.read("k"), { count: 1 });
      assert.throws(() => session({ storage: plain, onConflict: addIncrements }), /conditional/);
    },
  );

  const seeded = async (ttl?: number) => {
    const raw = new MemorySessionStorage<Enhance<any>>();
    const storage = enhanceStorage<Count>({ storage: raw, millisecondsToLive: ttl });
    await storage.write("1", { count: 10 });
    return { raw, storage };
  };

  await t.step("onConflict as a merge function, through a Bot", async () => {
    const { raw, storage } = await seeded(60_000);
    const { a, b } = await race(storage, { onConflict: addIncrements });
    assert.deepEqual([a.errors, b.errors], [[], []]);
    assert.deepEqual(raw.read("1")!.__d, { count: 12 });
  });

  await t.step("conflict detection is on by default", async () => {
    const { raw, storage } = await seeded(60_000);
    const { a, b } = await race(storage, {});
    assert.deepEqual(b.errors, []);
    assert.ok(a.errors[0]?.error instanceof SessionConflictError);
    assert.deepEqual(raw.read("1")!.__d, { count: 11 }, "b's write stands");
  });

  await t.step("lock, through a Bot: updates of one key run one at a time", async () => {
    const { raw, storage } = await seeded();
    const { a, b } = await race(storage, { lock: { ttl: 1000, wait: 2000 } });
    assert.deepEqual([a.errors, b.errors], [[], []]);
    assert.deepEqual(raw.read("1")!.__d, { count: 12 });
    assert.ok(await raw.acquireLease("1", "someone else", 1000), "no lease left behind");
  });

  await t.step("a read's own renewal never makes the following write conflict", async () => {
    using clock = new FakeTime();
    const { raw, storage } = await seeded(1000);
    clock.tick(900); // the next read renews
    const h = countingBot((h) =>
      h.bot.use(session({ initial: () => ({ count: 0 }), storage, onConflict: "error" }))
    );
    await h.send(message(1, "/inc"));
    assert.deepEqual(h.errors, []);
    assert.deepEqual(raw.read("1"), { __d: { count: 11 }, e: Date.now() + 1500 });
  });
});

Deno.test("defect 9.3: reads with versions renew, migrate and expire conditionally", async (t) => {
  await t.step("a renewal hands back the version after it", async () => {
    using clock = new FakeTime();
    const raw = new WatchedStorage<Enhance<any>>();
    const storage = enhanceStorage<Count>({ storage: raw, millisecondsToLive: 1000 });
    await storage.write("k", { count: 1 });
    const first = await storage.readVersioned!("k");
    clock.tick(600);
    const writes = raw.writes;
    const renewed = await storage.readVersioned!("k");
    assert.equal(raw.writes, writes + 1, "renewed");
    assert.deepEqual(renewed.value, { count: 1 });
    assert.notEqual(renewed.version, first.version);
    assert.equal(await storage.writeIfVersion!("k", { count: 9 }, first.version), null);
    assert.notEqual(await storage.writeIfVersion!("k", { count: 2 }, renewed.version), null);
    assert.deepEqual(await storage.read("k"), { count: 2 });
  });

  await t.step("a migration write-back hands back the version after it", async () => {
    const raw = new MemorySessionStorage<Enhance<any>>();
    raw.write("k", { v: 1, __d: { count: 1 } });
    const storage = enhanceStorage<Count>({
      storage: raw,
      migrations: { 1: (x) => x, 2: (x: Count) => ({ count: x.count * 10 }) },
    });
    const { value, version } = await storage.readVersioned!("k");
    assert.deepEqual(value, { count: 10 });
    assert.deepEqual(raw.read("k"), { v: 2, __d: { count: 10 } });
    assert.notEqual(await storage.writeIfVersion!("k", { count: 11 }, version), null);
    assert.deepEqual(raw.read("k"), { v: 2, __d: { count: 11 } });
  });

  await t.step("an expired session reads as nothing, and a write after it succeeds", async () => {
    using clock = new FakeTime();
    const raw = new MemorySessionStorage<Enhance<any>>();
    const storage = enhanceStorage<Count>({ storage: raw, millisecondsToLive: 1000 });
    await storage.write("k", { count: 1 });
    await storage.write("j", { count: 1 });
    clock.tick(1500);
    const k = await storage.readVersioned!("k");
    assert.equal(k.value, undefined);
    assert.notEqual(await storage.writeIfVersion!("k", { count: 0 }, k.version), null);
    assert.deepEqual(await storage.read("k"), { count: 0 });
    const j = await storage.readVersioned!("j");
    raw.write("j", { __d: { count: 7 } }); // another process writes in between
    assert.equal(await storage.writeIfVersion!("j", { count: 0 }, j.version), null);
    assert.equal(await storage.deleteIfVersion!("j", j.version), false);
    assert.deepEqual(await storage.read("j"), { count: 7 });
  });

  await t.step("a renewal never overwrites what another process wrote after the read", async () => {
    using clock = new FakeTime();
    for (const how of ["read", "readVersioned"] as const) {
      const raw = new WatchedStorage<Enhance<any>>();
      const storage = enhanceStorage<Count>({ storage: raw, millisecondsToLive: 1000 });
      await storage.write("k", { count: 1 });
      clock.tick(600); // the next read renews
      const other = enhanceStorage<Count>({ storage: raw, millisecondsToLive: 1000 });
      raw.afterRead = () => void other.write("k", { count: 2 });
      const value = how === "read"
        ? await storage.read("k")
        : (await storage.readVersioned!("k")).value;
      assert.deepEqual(value, { count: 2 }, how);
      assert.deepEqual(raw.read("k")!.__d, { count: 2 }, how);
    }
  });

  await t.step(
    "the version token keeps the stored v; the adapter is still a plain one",
    async () => {
      const raw = new MemorySessionStorage<Enhance<any>>();
      raw.write("k", { v: 4, __d: { count: 1 } });
      const storage = enhanceStorage<Count>({ storage: raw });
      const { version } = await storage.readVersioned!("k");
      assert.notEqual(await storage.writeIfVersion!("k", { count: 2 }, version), null);
      assert.deepEqual(raw.read("k"), { v: 4, __d: { count: 2 } });
      assert.equal(await storage.has!("k"), true);
      await storage.delete("k");
      assert.equal(await storage.read("k"), undefined);
    },
  );
});
