/**
 * Group 3: Redis at REDIS_URL (default redis://127.0.0.1:6379), through a
 * real `Bot.handleUpdate`, one update after another (latency-bound, as a
 * bot handling one chat at a time is). Rows:
 *
 * - raw `GET` + `SET` on the node-redis client, written only when changed
 *   (the limit, baseline);
 * - sessionkit `session()` on `RedisStorage` (defaults: conflict detection
 *   on, so reads and writes are `EVALSHA` scripts);
 * - grammY's `session()` on `@grammyjs/storage-redis` with `ioredis`;
 * - the same raw middleware on `ioredis`, to show the driver difference.
 *
 * Plus the storage alone against the driver for the same round trips, and
 * the cost of conflict detection. Every key starts with a unique prefix and
 * is deleted by the last bench of this file.
 */

import { createClient } from "npm:redis@^5";
import { Redis } from "npm:ioredis@^5";
import { RedisAdapter } from "npm:@grammyjs/storage-redis@^2";
import { type Context, session as grammySession } from "npm:grammy@^1.46";
import { session } from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import {
  CHATS,
  type Data,
  driver,
  initial,
  loudSkip,
  makeBot,
  mixedHandler,
  mixedUpdates,
  rawSession,
  RUN,
} from "./_bot.ts";

const URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const BATCH = 10;
const OPTS = { n: 1000, warmup: 200 } as const;

async function connect() {
  const client = createClient({
    url: URL,
    socket: { connectTimeout: 2000, reconnectStrategy: false },
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.ping();
    return { client };
  } catch (err) {
    if (client.isOpen) client.destroy();
    return { problem: err instanceof Error ? err.message : String(err) };
  }
}

const { client, problem } = await connect();
if (client === undefined) {
  loudSkip("Redis", URL, problem ?? "unknown");
  Deno.bench({ name: "redis (skipped: no server)", ignore: true, fn: () => {} });
} else {
  const io = new Redis(URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await io.connect();
  const prefix = (row: string) => `${RUN}:${row}:`;
  const seed = async (p: string) => {
    for (let chat = 1; chat <= CHATS; chat++) {
      await client.set(p + chat, JSON.stringify(initial()));
    }
  };
  const updates = mixedUpdates(CHATS);

  for (
    const [label, every] of [["read-mostly, 1 write in 10 updates", 10], [
      "write-heavy, every update writes",
      1,
    ]] as const
  ) {
    const group = `Redis, ${label}`;
    const tag = every === 1 ? "w" : "r";
    const rows: [string, Parameters<typeof makeBot>[0]][] = [];
    const rawP = prefix(`raw-${tag}`);
    await seed(rawP);
    rows.push([
      "raw GET+SET, node-redis (limit)",
      rawSession((k) => client.get(rawP + k), (k, t) => client.set(rawP + k, t)),
    ]);
    const skP = prefix(`sk-${tag}`);
    await seed(skP);
    rows.push([
      "sessionkit session + RedisStorage",
      session<Data>({ initial, storage: new RedisStorage<Data>(client, { prefix: skP }) }),
    ]);
    const gP = prefix(`grammy-${tag}`);
    await seed(gP);
    rows.push([
      "grammY session + @grammyjs/storage-redis (ioredis)",
      grammySession<Data, Context>({
        initial,
        prefix: gP,
        storage: new RedisAdapter<Data>({ instance: io }),
      }),
    ]);
    const ioP = prefix(`rawio-${tag}`);
    await seed(ioP);
    rows.push([
      "raw GET+SET, ioredis",
      rawSession((k) => io.get(ioP + k), (k, t) => io.set(ioP + k, t)),
    ]);
    for (const [name, middleware] of rows) {
      const bot = makeBot(middleware, mixedHandler(every));
      // deno-lint-ignore no-explicit-any
      const fn = driver(bot as any, updates, BATCH);
      Deno.bench({ ...OPTS, group, name, baseline: name.endsWith("(limit)"), fn });
    }
  }

  // The storage alone vs the driver: one read and one write per iteration.
  {
    const group = "Redis storage vs driver, one read + one write";
    const rawP = prefix("drv-raw");
    const skP = prefix("drv-sk");
    const storage = new RedisStorage<Data>(client, { prefix: skP });
    let i = 0;
    Deno.bench({
      ...OPTS,
      group,
      name: "node-redis GET + SET with JSON (limit)",
      baseline: true,
      fn: async () => {
        const key = rawP + (i++ % CHATS);
        const text = await client.get(key);
        const data: Data = text == null ? initial() : JSON.parse(text);
        data.count++;
        await client.set(key, JSON.stringify(data));
      },
    });
    Deno.bench({
      ...OPTS,
      group,
      name: "RedisStorage read + write",
      fn: async () => {
        const key = String(i++ % CHATS);
        const data = (await storage.read(key)) ?? initial();
        data.count++;
        await storage.write(key, data);
      },
    });
    Deno.bench({
      ...OPTS,
      group,
      name: "RedisStorage readVersioned + writeIfVersion",
      fn: async () => {
        const key = String(i++ % CHATS);
        const { value, version } = await storage.readVersioned(key);
        const data = value ?? initial();
        data.count++;
        await storage.writeIfVersion(key, data, version);
      },
    });
  }

  // Conflict detection in one process: off (overwrite) vs on (the default).
  {
    const group = "Redis, conflict detection cost (every update writes)";
    for (
      const [name, onConflict] of [["detection off (overwrite)", "overwrite"], [
        "detection on (default)",
        undefined,
      ]] as const
    ) {
      const p = prefix(`det-${onConflict ?? "on"}`);
      await seed(p);
      const bot = makeBot(
        session<Data>({
          initial,
          onConflict,
          storage: new RedisStorage<Data>(client, { prefix: p }),
        }),
        mixedHandler(1),
      );
      // deno-lint-ignore no-explicit-any
      const fn = driver(bot as any, updates, BATCH);
      Deno.bench({ ...OPTS, group, name, baseline: onConflict === "overwrite", fn });
    }
  }

  Deno.bench({
    name: "Redis cleanup (deletes this run's keys)",
    group: "cleanup",
    n: 1,
    warmup: 0,
    fn: async () => {
      if (!client.isOpen) return; // deno bench may call this more than once
      let deleted = 0;
      for await (const keys of client.scanIterator({ MATCH: `${RUN}:*`, COUNT: 500 })) {
        if (keys.length > 0) deleted += await client.del(keys);
      }
      if (deleted === 0) throw new Error("Redis cleanup found no keys: the benches wrote none?");
      io.disconnect();
      client.destroy();
    },
  });
}
