/** MemorySessionStorage beyond the contract: TTL forms, LRU eviction, copies, no timers. */
import assert from "node:assert/strict";
import { FakeTime } from "./helpers/clock.ts";
import { DriverStorage, MemorySessionStorage } from "../mod.ts";

Deno.test("MemorySessionStorage: grammY constructor form takes a TTL in ms", () => {
  using clock = new FakeTime();
  const storage = new MemorySessionStorage<{ n: number }>(1000);
  assert.equal(storage.ttl, 1000);
  storage.write("a", { n: 1 });
  clock.tick(999);
  assert.deepEqual(storage.read("a"), { n: 1 }); // renews
  clock.tick(999);
  assert.equal(storage.has("a"), true);
  clock.tick(1001);
  assert.equal(storage.has("a"), false);
  assert.equal(storage.read("a"), undefined);
  assert.deepEqual(storage.readAllKeys(), []);
});

Deno.test("MemorySessionStorage: expired entries are removed while the storage is used", () => {
  using clock = new FakeTime();
  const storage = new MemorySessionStorage<number>({ ttl: 100 });
  for (let i = 0; i < 1000; i++) storage.write(`k${i}`, i);
  assert.equal(storage.size, 1000);
  clock.tick(101);
  storage.write("fresh", 1);
  assert.equal(storage.size, 1, "the sweep dropped every expired entry");
});

Deno.test("MemorySessionStorage: maxEntries evicts the least recently used", () => {
  const storage = new MemorySessionStorage<number>({ maxEntries: 3 });
  storage.write("a", 1);
  storage.write("b", 2);
  storage.write("c", 3);
  storage.read("a"); // a is now the most recently used
  storage.write("d", 4);
  assert.deepEqual(storage.readAllKeys().sort(), ["a", "c", "d"]);
  assert.equal(storage.size, 3);
});

Deno.test("MemorySessionStorage: callers never hold the stored copy", () => {
  const storage = new MemorySessionStorage<{ list: number[] }>();
  const value = { list: [1] };
  storage.write("k", value);
  value.list.push(2);
  const read = storage.read("k")!;
  assert.deepEqual(read, { list: [1] });
  read.list.push(3);
  assert.deepEqual(storage.read("k"), { list: [1] });
  storage.readAllValues()[0].list.push(4);
  assert.deepEqual(storage.readAllEntries(), [["k", { list: [1] }]]);
});

Deno.test("MemorySessionStorage: bad options are refused with a clear error", () => {
  assert.throws(() => new MemorySessionStorage(0), /ttl must be a positive/);
  assert.throws(() => new MemorySessionStorage({ ttl: -5 }), /ttl must be a positive/);
  assert.throws(() => new MemorySessionStorage({ maxEntries: 0 }), /maxEntries/);
  assert.equal(new MemorySessionStorage(Infinity).ttl, undefined);
});

Deno.test("MemorySessionStorage: no timers are left running (sanitizers check this)", () => {
  const storage = new MemorySessionStorage({ ttl: 50, maxEntries: 10 });
  storage.write("k", 1);
  // Deno's op sanitizer fails this test if the storage started a timer.
});

Deno.test("MemorySessionStorage: a DriverStorage whose every method answers synchronously", async () => {
  const storage = new MemorySessionStorage<{ n: number }>({ maxEntries: 5 });
  assert.ok(storage instanceof DriverStorage);
  // Typed synchronously: these lines would not compile against MaybePromise.
  storage.write("a", { n: 1 });
  const n: number | undefined = storage.read("a")?.n;
  const keys: number = storage.readAllKeys().length;
  const has: boolean = storage.has("a");
  assert.deepEqual([n, keys, has], [1, 1, true]);
  assert.ok(Array.isArray(storage.readAllValues()));
  assert.deepEqual(storage.readAllEntries(), [["a", { n: 1 }]]);
  assert.deepEqual(storage.readAll(), [{ n: 1 }]);
  const versioned = storage.readVersioned("a");
  assert.ok(!(versioned instanceof Promise), "readVersioned answers at once");
  storage.delete("a");
  assert.equal(storage.size, 0);
  // The shared layer's checks and wording.
  assert.throws(() => storage.read(42 as unknown as string), TypeError);
  assert.throws(() => storage.deleteIfVersion("a", undefined as unknown as null), TypeError);
  await assert.rejects(() => storage.acquireLease("a", "", 1000), TypeError);
  assert.equal(await storage.acquireLease("a", "me", 1000), true);
  assert.equal(await storage.acquireLease("a", "you", 1000), false);
  await storage.releaseLease("a", "me");
  await storage.close();
});
