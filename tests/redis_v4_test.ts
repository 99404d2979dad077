/**
 * A client from npm:redis v4 fits RedisStorage as it is (the storage only
 * needs `sendCommand`): type-checked here without a cast, and run against
 * the real server.
 */
import assert from "node:assert/strict";
import { createClient } from "npm:redis@^4";
import { RedisStorage } from "../storages/redis.ts";
import { REDIS_URL, RedisFixture, redisTest, uniquePrefix } from "./redis_env.ts";

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of it) out.push(item);
  return out;
}

redisTest("RedisStorage over an npm:redis v4 client", async () => {
  const f = new RedisFixture();
  const client = createClient({ url: REDIS_URL });
  client.on("error", () => {});
  await client.connect();
  try {
    const admin = await f.admin();
    const prefix = f.track(uniquePrefix());
    const storage = new RedisStorage<{ n: number }>(client, { prefix, ttl: 60_000 });
    await storage.write("a b", { n: 1 });
    await storage.write("glob*", { n: 2 });
    assert.equal(await admin.get(prefix + "a b"), '{"n":1}');
    assert.ok(await admin.pTTL(prefix + "a b") > 50_000);
    assert.deepEqual(await storage.read("a b"), { n: 1 });
    assert.equal(await storage.has("glob*"), true);
    assert.deepEqual(
      new Map(await collect(storage.readAllEntries())),
      new Map([["a b", { n: 1 }], ["glob*", { n: 2 }]]),
    );
    const { version } = await storage.readVersioned("a b");
    assert.ok(await storage.writeIfVersion("a b", { n: 3 }, version));
    assert.equal(await storage.writeIfVersion("a b", { n: 4 }, version), null);
    assert.equal(await storage.acquireLease("a b", "me", 1000), true);
    assert.equal(await storage.renewLease("a b", "me", 1000), true);
    await storage.releaseLease("a b", "me");
    await storage.delete("glob*");
    assert.deepEqual(await collect(storage.readAllKeys()), ["a b"]);
    await storage.close();
    assert.equal(client.isOpen, true, "a client passed in stays open");
  } finally {
    await f.cleanup();
    await client.quit();
  }
});
