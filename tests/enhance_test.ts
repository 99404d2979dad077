/** enhanceStorage: grammY's stored format with its known defects fixed. */
// deno-lint-ignore-file no-explicit-any
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import { enhanceStorage as grammyEnhance, session as grammySession } from "npm:grammy@^1.46";
import {
  type Enhance,
  enhanceStorage,
  MemorySessionStorage,
  session,
  SessionError,
  type SessionFlavor,
} from "../mod.ts";
import { FakeTime } from "./helpers/clock.ts";
import { createHarness, message } from "./helpers/bot.ts";

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
  assert.equal(raw.read("a")!.e, Date.now() + 1000);
  clock.tick(300);
  await storage.read("a"); // more than half left: no rewrite
  assert.equal(raw.read("a")!.e, Date.now() + 700);
  clock.tick(400);
  await storage.read("a"); // less than half left: renewed
  assert.equal(raw.read("a")!.e, Date.now() + 1000);
  clock.tick(400); // b is 1100 ms old
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
