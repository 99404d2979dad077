/**
 * RedisStorage's optional capabilities against the real server: conditional
 * writes (compare-and-set) and leases, across two storages with clients of
 * their own, as two bot processes would have.
 */
import assert from "node:assert/strict";
import { isConditionalStorage, isLeaseStorage } from "../mod.ts";
import { Script } from "../storages/redis/scripts.ts";
import { RedisFixture, redisTest, uniquePrefix } from "./redis_env.ts";
import { sleep } from "./helpers/bot.ts";

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of it) out.push(item);
  return out;
}

redisTest("RedisStorage: conditional writes across two processes", async (t) => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const prefix = uniquePrefix();
    const a = await f.connect<{ n: number }>({ prefix, ttl: 5000 });
    const b = await f.connect<{ n: number }>({ prefix, ttl: 5000 });
    assert.ok(isConditionalStorage(a));
    assert.notEqual(a.client, b.client);

    await t.step("nothing stored: version null; create only if still nothing", async () => {
      assert.deepEqual(await a.readVersioned("k"), { value: undefined, version: null });
      const v1 = await a.writeIfVersion("k", { n: 1 }, null);
      assert.equal(v1, '{"n":1}', "the version is the stored text");
      assert.equal(await b.writeIfVersion("k", { n: 99 }, null), null, "already created");
      assert.equal(await admin.get(prefix + "k"), '{"n":1}');
      assert.equal(await admin.type(prefix + "k"), "string", "the session stays a plain string");
      const pttl = await admin.pTTL(prefix + "k");
      assert.ok(pttl > 4000 && pttl <= 5000, `the TTL applies, pttl ${pttl}`);
    });

    await t.step("a stale version is refused and the newer value kept", async () => {
      const seenByA = await a.readVersioned("k");
      const seenByB = await b.readVersioned("k");
      assert.deepEqual(seenByA, { value: { n: 1 }, version: '{"n":1}' });
      assert.equal(seenByA.version, seenByB.version);
      const vb = await b.writeIfVersion("k", { n: 2 }, seenByB.version);
      assert.equal(vb, '{"n":2}');
      assert.equal(await a.writeIfVersion("k", { n: 2 }, seenByA.version), null);
      assert.equal(await admin.get(prefix + "k"), '{"n":2}');
      const again = await a.readVersioned("k");
      assert.equal(again.version, vb);
      assert.ok(await a.writeIfVersion("k", { n: again.value!.n + 1 }, again.version));
      assert.equal(await admin.get(prefix + "k"), '{"n":3}');
    });

    await t.step("a plain write or a write from outside changes the version", async () => {
      const { version } = await a.readVersioned("k");
      await b.write("k", { n: 10 });
      assert.equal(await a.writeIfVersion("k", { n: 4 }, version), null);
      await admin.set(prefix + "k", '{"n":11}');
      assert.equal((await a.readVersioned("k")).version, '{"n":11}');
      assert.deepEqual(await a.read("k"), { n: 11 });
    });

    await t.step("versioned reads renew the TTL", async () => {
      await admin.pExpire(prefix + "k", 1000);
      await a.readVersioned("k");
      assert.ok(await admin.pTTL(prefix + "k") > 4000);
    });

    await t.step("conditional delete", async () => {
      const { version } = await a.readVersioned("k");
      assert.equal(await b.deleteIfVersion("k", '{"n":"something else"}'), false);
      assert.equal(await b.deleteIfVersion("k", null), false, "something is stored");
      assert.equal(await admin.exists(prefix + "k"), 1);
      assert.equal(await b.deleteIfVersion("k", version), true);
      assert.equal(await admin.exists(prefix + "k"), 0);
      assert.equal(await a.deleteIfVersion("k", null), true, "nothing stored, nothing expected");
      assert.equal(await a.deleteIfVersion("k", version), false, "expected a version, none");
    });

    await t.step("a refused value is refused before the script runs", async () => {
      await assert.rejects(() => a.writeIfVersion("k", { n: NaN }, null), /Nothing was written/);
      assert.equal(await admin.exists(prefix + "k"), 0);
    });

    await t.step("a script Redis does not know yet is sent with EVAL", async () => {
      // A script no one ran before (unique text) gets NOSCRIPT from EVALSHA,
      // as after a server restart; SCRIPT FLUSH would disturb other clients.
      const script = new Script(`-- ${crypto.randomUUID()}\nreturn ARGV[1]`);
      assert.deepEqual(await admin.scriptExists(script.sha), [0]);
      assert.equal(await script.run(a.client, [], ["hello"]), "hello");
      assert.deepEqual(await admin.scriptExists(script.sha), [1]);
      assert.equal(await script.run(b.client, [], ["again"]), "again");
    });

    await t.step("concurrent compare-and-set increments from both lose nothing", async () => {
      await a.delete("k");
      const increment = async (s: typeof a): Promise<number> => {
        for (let attempt = 1; attempt <= 500; attempt++) {
          const { value, version } = await s.readVersioned("k");
          if (await s.writeIfVersion("k", { n: (value?.n ?? 0) + 1 }, version)) return attempt;
        }
        throw new Error("gave up after 500 attempts");
      };
      const attempts = await Promise.all(
        Array.from({ length: 60 }, (_, i) => increment(i % 2 === 0 ? a : b)),
      );
      assert.equal(await admin.get(prefix + "k"), '{"n":60}');
      assert.ok(attempts.some((n) => n > 1), "some writes really conflicted");
    });
  } finally {
    await f.cleanup();
  }
});

redisTest("RedisStorage: leases across two processes", async (t) => {
  const f = new RedisFixture();
  try {
    const admin = await f.admin();
    const prefix = uniquePrefix();
    const a = await f.connect<unknown>({ prefix });
    const b = await f.connect<unknown>({ prefix });
    assert.ok(isLeaseStorage(a));
    const leaseKey = `sessionkit-lease:${prefix}k`;
    assert.equal(a.leasePrefix + "k", leaseKey);

    await t.step("one holder at a time; the holder may take it again", async () => {
      assert.equal(await a.acquireLease("k", "A", 2000), true);
      assert.equal(await admin.get(leaseKey), "A");
      assert.equal(await b.acquireLease("k", "B", 2000), false);
      assert.equal(await a.acquireLease("k", "A", 3000), true);
      assert.ok(await admin.pTTL(leaseKey) > 2000, "taking it again extends it");
      assert.equal(await admin.get(leaseKey), "A");
    });

    await t.step("only the holder renews or releases", async () => {
      assert.equal(await b.renewLease("k", "B", 10_000), false);
      assert.ok(await admin.pTTL(leaseKey) <= 3000);
      assert.equal(await a.renewLease("k", "A", 10_000), true);
      assert.ok(await admin.pTTL(leaseKey) > 9000);
      await b.releaseLease("k", "B");
      assert.equal(await admin.get(leaseKey), "A", "someone else's release leaves it");
      await a.releaseLease("k", "A");
      assert.equal(await admin.exists(leaseKey), 0);
      assert.equal(await b.acquireLease("k", "B", 2000), true);
      await b.releaseLease("k", "B");
    });

    await t.step("a lease expires by itself after its TTL", async () => {
      assert.equal(await a.acquireLease("k", "A", 300), true);
      assert.equal(await b.acquireLease("k", "B", 300), false);
      await sleep(450);
      assert.equal(await a.renewLease("k", "A", 300), false, "lost");
      assert.equal(await b.acquireLease("k", "B", 1000), true);
      await b.releaseLease("k", "B");
    });

    await t.step("leases never collide with sessions nor show up in listings", async () => {
      await a.write("k", { session: true });
      assert.equal(await a.acquireLease("k", "A", 2000), true);
      assert.deepEqual(await a.read("k"), { session: true });
      assert.deepEqual(await collect(a.readAllKeys()), ["k"]);
      assert.deepEqual(await collect(b.readAllEntries()), [["k", { session: true }]]);
      await a.delete("k");
      assert.equal(await admin.get(leaseKey), "A", "deleting the session keeps the lease");
      await a.releaseLease("k", "A");
    });

    await t.step("lease TTLs are checked", async () => {
      for (const ttl of [0, -5, NaN, Infinity]) {
        await assert.rejects(() => a.acquireLease("k", "A", ttl), RangeError);
        await assert.rejects(() => a.renewLease("k", "A", ttl), RangeError);
      }
    });

    await t.step("contended: 20 tries at once, exactly one wins", async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).acquireLease("race", `o${i}`, 2000)),
      );
      assert.equal(results.filter(Boolean).length, 1);
      const winner = `o${results.indexOf(true)}`;
      assert.equal(await admin.get(`sessionkit-lease:${prefix}race`), winner);
      await a.releaseLease("race", winner);
    });

    await t.step("a custom lease prefix", async () => {
      const leasePrefix = `${uniquePrefix()}leases:`;
      const c = await f.connect<unknown>({ prefix, leasePrefix });
      assert.equal(await c.acquireLease("k", "C", 2000), true);
      assert.equal(await admin.get(leasePrefix + "k"), "C");
      await c.releaseLease("k", "C");
      assert.equal(await admin.exists(leasePrefix + "k"), 0);
    });
  } finally {
    await f.cleanup();
  }
});
