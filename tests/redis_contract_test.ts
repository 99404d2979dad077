/** The shared storage contract, run against the real Redis at REDIS_URL. */
import type { RedisStorage } from "../storages/redis.ts";
import { storageContract } from "./contract.ts";
import { redisAvailable, RedisFixture, redisTest } from "./redis_env.ts";

if (redisAvailable) {
  const fixture = new RedisFixture();
  storageContract("RedisStorage", {
    // Every instance gets a prefix of its own (sessionkit-test:<uuid>:) over
    // one shared client; cleanup deletes every key under those prefixes.
    // An instance asked to share another's namespace uses its prefix.
    create: (options) =>
      fixture.storage({
        ttl: options?.ttl,
        prefix: (options?.sharing as RedisStorage<unknown> | undefined)?.prefix,
      }),
    cleanup: () => fixture.cleanup(),
    largeValueBytes: 8 * 1024 * 1024,
    ttl: true,
    ttlMs: 500,
  });
} else {
  redisTest("RedisStorage: storage contract", () => Promise.resolve());
}
