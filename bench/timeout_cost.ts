/**
 * What a storage's `timeout` costs (issue #18, detection's time): a read
 * plus a conditional write on `RedisStorage` (Redis at REDIS_URL), one after
 * another, with
 *
 * - `timeout: Infinity` (no bound; the baseline),
 * - the default bound, whose calls share one timer (storages/shared/deadlines.ts),
 * - no bound in the storage but a timer of its own raced by each call, armed
 *   and cleared per call, as the bound was built before (the row it replaced).
 *
 * `deno bench -A bench/timeout_cost.ts`. Keys start with a unique prefix and
 * are deleted by the last bench of the file.
 *
 * @module
 */

import { createClient } from "npm:redis@^5";
import { RedisStorage } from "../storages/redis.ts";
import { backgroundTimeout } from "../src/timers.ts";
import { loudSkip, RUN } from "./_bot.ts";

const URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const BATCH = 10;
const KEYS = 100;
interface Data {
  count: number;
}

/** `storage`'s reads and writes, each racing a timer of its own of `ms`. */
function timerPerCall(storage: RedisStorage<Data>, ms: number): RedisStorage<Data> {
  const race = <R>(result: Promise<R>): Promise<R> =>
    new Promise<R>((resolve, reject) => {
      const timer = backgroundTimeout(() => reject(new Error("timed out")), ms);
      result.then((value) => {
        clearTimeout(timer);
        resolve(value);
      }, (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  const readVersioned = storage.readVersioned.bind(storage);
  const writeIfVersion = storage.writeIfVersion.bind(storage);
  storage.readVersioned = (key) => race(Promise.resolve(readVersioned(key)));
  storage.writeIfVersion = (key, value, version) =>
    race(Promise.resolve(writeIfVersion(key, value, version)));
  return storage;
}

const client = createClient({
  url: URL,
  socket: { connectTimeout: 2000, reconnectStrategy: false },
});
client.on("error", () => {});
let problem: string | undefined;
try {
  await client.connect();
} catch (err) {
  problem = err instanceof Error ? err.message : String(err);
}

if (problem !== undefined) {
  loudSkip("Redis", URL, problem);
  Deno.bench({ name: "timeout (skipped: no server)", ignore: true, fn: () => {} });
} else {
  const prefix = `${RUN}:timeout:`;
  const rows: [string, RedisStorage<Data>, boolean][] = [
    ["no bound (timeout: Infinity)", new RedisStorage(client, { prefix, timeout: Infinity }), true],
    ["default bound, one timer for all calls", new RedisStorage(client, { prefix }), false],
    [
      "a timer armed and cleared per call (before)",
      timerPerCall(new RedisStorage(client, { prefix, timeout: Infinity }), 10_000),
      false,
    ],
  ];
  let i = 0;
  for (const [name, storage, baseline] of rows) {
    Deno.bench({
      name,
      group: "Redis read + conditional write, by how calls are bounded",
      baseline,
      n: 1000,
      warmup: 200,
      async fn() {
        for (let n = 0; n < BATCH; n++) {
          const key = String(i++ % KEYS);
          const read = await storage.readVersioned(key);
          await storage.writeIfVersion(
            key,
            { count: (read?.value?.count ?? 0) + 1 },
            read?.version ?? null,
          );
        }
      },
    });
  }
  Deno.bench({
    name: "timeout: clean up (deletes this run's keys)",
    group: "cleanup",
    n: 1,
    warmup: 0,
    async fn() {
      if (!client.isOpen) return; // deno bench may call this more than once
      for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
        if (keys.length > 0) await client.del(keys);
      }
      client.destroy();
    },
  });
}
