/** RedisStorage against the real server: what Redis holds, TTLs, prefixes, listings. */
import assert from "node:assert/strict";
import {
  enhanceStorage,
  serializeSession,
  session,
  SessionError,
  SessionValueError,
} from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import { REDIS_URL, RedisFixture, redisTest, uniquePrefix } from "./redis_env.ts";
import { sleep } from "./helpers/bot.ts";

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of it) out.push(item);
  return out;
}

redisTest("RedisStorage: Redis holds exactly the JSON text, with TTL from SET PX", async (t) => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    await t.step("plain storage: SET without expiry", async () => {
      const storage = await f.storage<unknown>();
      const value = { a: [1, "é", null], b: { "": true } };
      await storage.write("k", value);
      assert.equal(await admin.get(storage.prefix + "k"), serializeSession(value));
      assert.equal(await admin.type(storage.prefix + "k"), "string");
      assert.equal(await admin.pTTL(storage.prefix + "k"), -1);
    });
    await t.step(
      "ttl storage: every write sets PX, an overwrite without ttl clears it",
      async () => {
        const timed = await f.storage<unknown>({ ttl: 5000 });
        await timed.write("k", { n: 1 });
        const pttl = await admin.pTTL(timed.prefix + "k");
        assert.ok(pttl > 4000 && pttl <= 5000, `pttl ${pttl}`);
        assert.equal(await admin.get(timed.prefix + "k"), '{"n":1}');
        const plain = new RedisStorage(admin, { prefix: timed.prefix });
        await plain.write("k", { n: 2 });
        assert.equal(await admin.pTTL(timed.prefix + "k"), -1);
      },
    );
    await t.step("a fractional ttl is rounded up to whole milliseconds", async () => {
      const timed = await f.storage<unknown>({ ttl: 1500.2 });
      assert.equal(timed.ttl, 1501);
      await timed.write("k", 1);
      const pttl = await admin.pTTL(timed.prefix + "k");
      assert.ok(pttl > 1000 && pttl <= 1501, `pttl ${pttl}`);
    });
    await t.step("a refused value writes nothing at all", async () => {
      const storage = await f.storage<unknown>();
      await assert.rejects(() => storage.write("bad", { d: new Date() }), SessionValueError);
      assert.equal(await admin.exists(storage.prefix + "bad"), 0);
    });
  } finally {
    await f.cleanup();
  }
});

redisTest(
  "RedisStorage: reads renew the TTL, or clear it without one, never rewriting the value",
  async () => {
    const f = new RedisFixture();
    try {
      const admin = await f.admin();
      const storage = await f.storage<unknown>({ ttl: 1000 });
      const redisKey = storage.prefix + "k";
      // JSON text with spaces: any rewrite would store the compact form.
      await admin.set(redisKey, '{ "n" : 1 }', { PX: 1000 });
      await sleep(600);
      assert.ok(await admin.pTTL(redisKey) < 500);
      assert.equal(await storage.has("k"), true);
      assert.ok(await admin.pTTL(redisKey) < 500, "has (EXISTS) does not renew");
      assert.deepEqual(await storage.read("k"), { n: 1 });
      const pttl = await admin.pTTL(redisKey);
      assert.ok(pttl > 900 && pttl <= 1000, `read renewed the TTL, pttl ${pttl}`);
      assert.equal(await admin.get(redisKey), '{ "n" : 1 }', "the value was not rewritten");
      // A storage without TTL (the TTL was turned off) clears the expiry on
      // read, still without rewriting the value: the session no longer expires.
      const plain = new RedisStorage(admin, { prefix: storage.prefix });
      assert.deepEqual(await plain.read("k"), { n: 1 });
      assert.equal(await admin.pTTL(redisKey), -1, "the read removed the expiry");
      assert.equal(await admin.get(redisKey), '{ "n" : 1 }', "the value was not rewritten");
    } finally {
      await f.cleanup();
    }
  },
);

redisTest("RedisStorage: options are checked at construction", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    for (const ttl of [0, -1, NaN, -Infinity, 1e20, "100" as unknown as number]) {
      assert.throws(
        () => new RedisStorage(admin, { ttl }),
        (err: Error) =>
          (err instanceof RangeError || err instanceof TypeError) &&
          /ttl must be a positive/.test(err.message),
        `ttl ${String(ttl)}`,
      );
      await assert.rejects(
        () => RedisStorage.connect(REDIS_URL, { ttl }),
        /ttl must be a positive/,
      );
    }
    // Infinity means no TTL, on every storage (as in grammY's MemorySessionStorage).
    assert.equal(new RedisStorage(admin, { ttl: Infinity }).ttl, undefined);
    assert.throws(
      () => new RedisStorage(admin, { prefix: "session:", leasePrefix: "session:lease:" }),
      /overlaps the session prefix/,
    );
    assert.throws(() => new RedisStorage(admin, { prefix: "a:", leasePrefix: "" }), /overlaps/);
    assert.throws(() => new RedisStorage({} as never), /sendCommand/);
    const storage = new RedisStorage(admin);
    assert.equal(storage.prefix, "session:");
    assert.equal(storage.leasePrefix, "sessionkit-lease:session:");
    assert.equal(storage.ttl, undefined);
  } finally {
    await f.cleanup();
  }
});

redisTest("RedisStorage: the default prefix is session:, and an empty prefix works", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const key = `sessionkit-test:${crypto.randomUUID()}`;
    f.track(`session:${key}`);
    f.track(key);
    const byDefault = new RedisStorage<unknown>(admin);
    await byDefault.write(key, { d: 1 });
    assert.equal(await admin.get(`session:${key}`), '{"d":1}');
    await byDefault.delete(key);
    assert.equal(await admin.exists(`session:${key}`), 0);

    const bare = new RedisStorage<unknown>(admin, { prefix: "" });
    await bare.write(key, { e: 2 });
    assert.equal(await admin.get(key), '{"e":2}');
    assert.deepEqual(await bare.read(key), { e: 2 });
    // With no prefix the whole database is listed: our key is among it, unstripped.
    assert.ok((await collect(bare.readAllKeys())).includes(key));
    await assert.rejects(() => bare.acquireLease(key, "me", 1000), SessionError);
    // lock on it fails when the middleware is created, saying why (review
    // finding: it was accepted, and every update then failed).
    assert.match(bare.leaseProblem ?? "", /cannot use leases: .*non-empty prefix/);
    assert.throws(
      () => session({ storage: bare, lock: {} }),
      /lock cannot be used with this storage: RedisStorage: cannot use leases/,
    );
    assert.doesNotThrow(() => session({ storage: bare }));
    assert.equal(byDefault.leaseProblem, undefined);
    // Through enhanceStorage too (review finding: the wrapper dropped it).
    assert.throws(
      () => session({ storage: enhanceStorage({ storage: bare as never }), lock: {} }),
      /lock cannot be used with this storage/,
    );
    await bare.delete(key);
    assert.equal(await bare.has(key), false);
  } finally {
    await f.cleanup();
  }
});

redisTest("RedisStorage: glob characters in the prefix are escaped in SCAN MATCH", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const base = uniquePrefix();
    // Unescaped, the pattern `${base}p*?[ab]\x:*` would match the second prefix too.
    const globby = await f.storage<unknown>({ prefix: `${base}p*?[ab]\\x:` });
    const matched = await f.storage<unknown>({ prefix: `${base}p-long-Xax:` });
    const globKeys = ["1", "*", "?", "[ab]", "a\\b", "", "x y:z/ü🔑"];
    for (const key of globKeys) await globby.write(key, { from: "globby", key });
    await matched.write("1", { from: "matched" });
    await matched.write("other", { from: "matched" });
    assert.equal(await admin.get(`${base}p*?[ab]\\x:[ab]`), '{"from":"globby","key":"[ab]"}');

    assert.deepEqual((await collect(globby.readAllKeys())).sort(), [...globKeys].sort());
    assert.deepEqual(
      new Map(await collect(globby.readAllEntries())),
      new Map(globKeys.map((key) => [key, { from: "globby", key }])),
    );
    const values = await collect(globby.readAllValues());
    assert.equal(values.length, globKeys.length);
    assert.ok(values.every((v) => (v as { from: string }).from === "globby"));
    assert.deepEqual((await collect(matched.readAllKeys())).sort(), ["1", "other"]);
    assert.deepEqual(await globby.read("1"), { from: "globby", key: "1" });
    assert.deepEqual(await matched.read("1"), { from: "matched" });
  } finally {
    await f.cleanup();
  }
});

redisTest("RedisStorage: listings span many SCAN pages and MGET batches", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const storage = await f.storage<{ i: number }>();
    const n = 1234;
    // Written raw in one MSET to keep the test fast; the storage reads it back.
    await admin.mSet(
      Array.from({ length: n }, (_, i) =>
        [storage.prefix + `k${i}`, `{"i":${i}}`] as [
          string,
          string,
        ]),
    );
    const keys = await collect(storage.readAllKeys());
    assert.equal(keys.length, n);
    assert.equal(new Set(keys).size, n, "each key once");
    const entries = await collect(storage.readAllEntries());
    assert.equal(entries.length, n);
    for (const [key, value] of entries) assert.equal(key, `k${value.i}`);
    const values = await collect(storage.readAllValues());
    assert.deepEqual(values.map((v) => v.i).sort((a, b) => a - b), [...Array(n).keys()]);
  } finally {
    await f.cleanup();
  }
});

redisTest("RedisStorage: a foreign value under the prefix is a clear error", async () => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const storage = await f.storage<unknown>();
    await admin.set(storage.prefix + "foreign", "not json");
    await assert.rejects(
      () => storage.read("foreign"),
      (err: Error) =>
        err instanceof SessionError && err.key === "foreign" && /not JSON text/.test(err.message),
    );
    await assert.rejects(() => collect(storage.readAllValues()), SessionError);
    assert.equal(await admin.get(storage.prefix + "foreign"), "not json", "left as it was");
    await assert.rejects(() => storage.write("\ud800", {}), /well-formed/);
  } finally {
    await f.cleanup();
  }
});
