/**
 * RedisStorage over an ioredis client (`new Redis()` from npm:ioredis v5)
 * against the real Redis at REDIS_URL: the storage contract, and that the
 * single-server layout is the same as with node-redis (a session written
 * through one client kind is read through the other).
 */
import assert from "node:assert/strict";
import { Redis } from "npm:ioredis@^5";
import { RedisStorage } from "../storages/redis.ts";
import { storageContract } from "./contract.ts";
import { REDIS_URL, redisAvailable, RedisFixture, redisTest, uniquePrefix } from "./redis_env.ts";

if (redisAvailable) {
  const fixture = new RedisFixture();
  let client: Redis | undefined;
  storageContract("RedisStorage over ioredis", {
    create(options) {
      client ??= new Redis(REDIS_URL);
      const shared = options?.sharing as RedisStorage<unknown> | undefined;
      const prefix = fixture.track(shared?.prefix ?? uniquePrefix());
      return new RedisStorage<unknown>(client, { prefix, ttl: options?.ttl });
    },
    async cleanup() {
      try {
        await fixture.cleanup();
      } finally {
        await client?.quit();
      }
    },
    largeValueBytes: 8 * 1024 * 1024,
    ttl: true,
    ttlMs: 500,
  });
} else {
  redisTest("RedisStorage over ioredis: storage contract", () => Promise.resolve());
}

redisTest("RedisStorage over ioredis: the same keys as over node-redis", async () => {
  const fixture = new RedisFixture();
  const io = new Redis(REDIS_URL);
  try {
    const viaNodeRedis = await fixture.storage<{ n: number }>();
    const viaIoredis = new RedisStorage<{ n: number }, Redis>(io, { prefix: viaNodeRedis.prefix });
    await viaNodeRedis.write("42", { n: 1 });
    assert.deepEqual(await viaIoredis.read("42"), { n: 1 });
    const { version } = await viaIoredis.readVersioned("42");
    assert.notEqual(await viaIoredis.writeIfVersion("42", { n: 2 }, version), null);
    assert.equal(await io.get(viaNodeRedis.prefix + "42"), '{"n":2}', "the plain layout");
    assert.equal(await viaIoredis.acquireLease("42", "io", 5000), true);
    assert.equal(await viaNodeRedis.acquireLease("42", "node", 5000), false, "one lease key");
    assert.equal(await io.get(`sessionkit-lease:${viaNodeRedis.prefix}42`), "io");
    await viaIoredis.releaseLease("42", "io");
    assert.deepEqual(await Array.fromAsync(viaIoredis.readAllEntries()), [["42", { n: 2 }]]);
    assert.equal(viaIoredis.client, io, "the client passed in");
  } finally {
    await fixture.cleanup();
    await io.quit();
  }
});
