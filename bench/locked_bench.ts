/**
 * Issue #18: what `lock` and concurrency cost, through a real
 * `Bot.handleUpdate`, on Redis (REDIS_URL) and PostgreSQL (DATABASE_URL).
 *
 * - "locked against unlocked" groups, every update writes, one after
 *   another: the baseline is sessionkit's `session()` with its default
 *   conflict detection (2 round trips: a versioned read, a conditional
 *   write); the rows are the same with `lock` (2 round trips: lease + read,
 *   write + release), and with `lock` on a storage subclass that overrides
 *   `readVersioned` and `writeIfVersion` (the 4 separate calls, what a
 *   locked update cost before the joined calls).
 * - "100 in flight, read-mostly" groups: 100 updates of 100 chats at once,
 *   1 in 10 writing; the baseline is a hand-written middleware on the bare
 *   driver making the same round trips (one read per update, one write per
 *   changed session), the row sessionkit's `session()`.
 *
 * Every key and table starts with a unique prefix and is removed by the
 * last bench of the file.
 */

import { createClient } from "npm:redis@^5";
import pg from "npm:pg@^8";
import { session, type StorageAdapter } from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import { PostgresStorage } from "../storages/postgres.ts";
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

const REDIS_URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const OPTS = { n: 200, warmup: 40 } as const;
const updates = mixedUpdates(CHATS);

/** 100 updates of 100 chats at once per call. */
function concurrently(bot: { handleUpdate(u: unknown): Promise<void> }): () => Promise<void> {
  let round = 0;
  return async () => {
    const base = (round++ % 10) * CHATS;
    await Promise.all(
      updates.map((u) =>
        bot.handleUpdate({ ...u, update_id: base + (u as { update_id: number }).update_id })
      ),
    );
  };
}

/** The three rows of a "locked against unlocked" group. */
function lockRows(
  group: string,
  plain: () => Promise<StorageAdapter<Data>>,
  overriding: () => Promise<StorageAdapter<Data>>,
): Promise<void> {
  return (async () => {
    const rows: [string, Parameters<typeof makeBot>[0]][] = [
      [
        "sessionkit, conflict detection, no lock (baseline)",
        session({ initial, storage: await plain() }),
      ],
      ["sessionkit, lock", session({ initial, storage: await plain(), lock: {} })],
      [
        "sessionkit, lock, storage subclass overriding reads and writes (4 round trips)",
        session({ initial, storage: await overriding(), lock: {} }),
      ],
    ];
    for (const [name, middleware] of rows) {
      const bot = makeBot(middleware, mixedHandler(1));
      // deno-lint-ignore no-explicit-any
      const fn = driver(bot as any, updates, 10);
      Deno.bench({ ...OPTS, group, name, baseline: name.endsWith("(baseline)"), fn });
    }
  })();
}

/**
 * The storage alone, one locked update after another (a read and a write of
 * one key per iteration): unlocked (baseline), the joined lease calls, and
 * the four separate calls they replace.
 */
function storageRows(
  group: string,
  storage: {
    readVersioned(k: string): Promise<{ value?: Data; version: string | null }>;
    writeIfVersion(k: string, v: Data, e: string | null): Promise<string | null>;
    acquireLease(k: string, o: string, ttl: number): Promise<boolean>;
    releaseLease(k: string, o: string): Promise<void>;
    acquireLeaseAndRead(
      k: string,
      o: string,
      ttl: number,
    ): Promise<{ value?: Data; version: string | null } | null>;
    saveAndReleaseLease(k: string, v: Data, e: string | null, o: string): Promise<unknown>;
  },
): void {
  let i = 0;
  const key = () => String((i++ % CHATS) + 1);
  const next = (value: Data | undefined): Data => ({ ...(value ?? initial()), count: i });
  const rows: [string, () => Promise<void>][] = [
    ["readVersioned + writeIfVersion, no lease (baseline)", async () => {
      const k = key();
      const read = await storage.readVersioned(k);
      await storage.writeIfVersion(k, next(read.value), read.version);
    }],
    ["acquireLeaseAndRead + saveAndReleaseLease", async () => {
      const k = key();
      const read = await storage.acquireLeaseAndRead(k, "bench", 5000);
      await storage.saveAndReleaseLease(k, next(read!.value), read!.version, "bench");
    }],
    ["acquireLease + readVersioned + writeIfVersion + releaseLease", async () => {
      const k = key();
      await storage.acquireLease(k, "bench", 5000);
      const read = await storage.readVersioned(k);
      await storage.writeIfVersion(k, next(read.value), read.version);
      await storage.releaseLease(k, "bench");
    }],
  ];
  for (const [name, fn] of rows) {
    Deno.bench({
      ...OPTS,
      n: 1000,
      warmup: 100,
      group,
      name,
      baseline: name.endsWith("(baseline)"),
      fn,
    });
  }
}

/** The two rows of a "100 in flight" group. */
function concurrentRows(
  group: string,
  raw: Parameters<typeof makeBot>[0],
  storage: StorageAdapter<Data>,
): void {
  const rows: [string, Parameters<typeof makeBot>[0]][] = [
    ["bare driver, same round trips (limit)", raw],
    ["sessionkit session", session({ initial, storage })],
  ];
  for (const [name, middleware] of rows) {
    const bot = makeBot(middleware, mixedHandler(10));
    // deno-lint-ignore no-explicit-any
    const fn = concurrently(bot as any);
    Deno.bench({ ...OPTS, n: 60, warmup: 10, group, name, baseline: name.endsWith("(limit)"), fn });
  }
}

// --- Redis -------------------------------------------------------------------------------------

const redis = createClient({
  url: REDIS_URL,
  socket: { connectTimeout: 2000, reconnectStrategy: false },
});
redis.on("error", () => {});
const redisProblem = await redis.connect().then(() => undefined, (err) => String(err));
if (redisProblem !== undefined) {
  loudSkip("Redis", REDIS_URL, redisProblem);
} else {
  class Overriding<T> extends RedisStorage<T> {
    override readVersioned(key: string) {
      return super.readVersioned(key);
    }
    override writeIfVersion(key: string, value: T, expected: string | null) {
      return super.writeIfVersion(key, value, expected);
    }
  }
  let n = 0;
  const prefix = () => `${RUN}:lock${n++}:`;
  await lockRows(
    "Redis, locked against unlocked, every update writes",
    () => Promise.resolve(new RedisStorage<Data>(redis, { prefix: prefix() })),
    () => Promise.resolve(new Overriding<Data>(redis, { prefix: prefix() })),
  );
  storageRows(
    "Redis storage alone, a locked update against an unlocked one",
    new RedisStorage<Data>(redis, { prefix: prefix() }) as never,
  );
  const rawP = `${RUN}:raw100:`;
  for (let chat = 1; chat <= CHATS; chat++) {
    await redis.set(rawP + chat, JSON.stringify(initial()));
  }
  const skP = `${RUN}:sk100:`;
  const storage = new RedisStorage<Data>(redis, { prefix: skP });
  for (let chat = 1; chat <= CHATS; chat++) await storage.write(String(chat), initial());
  concurrentRows(
    "Redis, 100 in flight, read-mostly (1 write in 10)",
    rawSession((k) => redis.get(rawP + k), (k, t) => redis.set(rawP + k, t)),
    storage,
  );
}

// --- PostgreSQL --------------------------------------------------------------------------------

const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });
pool.on("error", () => {});
const pgProblem = await pool.query("SELECT 1").then(() => undefined, (err) => String(err));
const tables: string[] = [];
if (pgProblem !== undefined) {
  loudSkip("PostgreSQL", DATABASE_URL, pgProblem);
} else {
  class Overriding<T> extends PostgresStorage<T> {
    override readVersioned(key: string) {
      return super.readVersioned(key);
    }
    override writeIfVersion(key: string, value: T, expected: string | null) {
      return super.writeIfVersion(key, value, expected);
    }
  }
  let n = 0;
  const table = () => {
    const name = `${RUN}_lock${n++}`;
    tables.push(name, `${name}_leases`);
    return name;
  };
  await lockRows(
    "PostgreSQL, locked against unlocked, every update writes",
    () => Promise.resolve(new PostgresStorage<Data>(pool, { table: table() })),
    () => Promise.resolve(new Overriding<Data>(pool, { table: table() })),
  );
  const alone = new PostgresStorage<Data>(pool, { table: table() });
  // Tables and the locked read's function made before the measurement.
  await alone.releaseLease("0", "bench");
  await alone.acquireLeaseAndRead("0", "bench", 1000);
  await alone.saveAndReleaseLease("0", initial(), undefined, "bench");
  storageRows("PostgreSQL storage alone, a locked update against an unlocked one", alone as never);
  const rawName = `${RUN}_raw100`;
  tables.push(rawName);
  const q = pg.escapeIdentifier(rawName);
  await pool.query(`CREATE TABLE ${q} (key text COLLATE "C" PRIMARY KEY, value json NOT NULL)`);
  const select = `SELECT value::text AS value FROM ${q} WHERE key = $1`;
  const upsert = `INSERT INTO ${q} (key, value) VALUES ($1, $2::json)
ON CONFLICT (key) DO UPDATE SET value = excluded.value`;
  const get = async (key: string) =>
    (await pool.query(select, [key])).rows[0]?.value as string | undefined;
  const set = (key: string, text: string) => pool.query(upsert, [key, text]);
  for (let chat = 1; chat <= CHATS; chat++) await set(String(chat), JSON.stringify(initial()));
  const storage = new PostgresStorage<Data>(pool, { table: table() });
  for (let chat = 1; chat <= CHATS; chat++) await storage.write(String(chat), initial());
  concurrentRows(
    "PostgreSQL, 100 in flight, read-mostly (1 write in 10)",
    rawSession(get, set),
    storage,
  );
}

let cleaned = false;
Deno.bench({
  name: "cleanup (deletes this run's keys and tables)",
  group: "cleanup",
  n: 1,
  warmup: 0,
  fn: async () => {
    if (cleaned) return;
    cleaned = true;
    if (redisProblem === undefined) {
      for await (const keys of redis.scanIterator({ MATCH: `${RUN}:*`, COUNT: 1000 })) {
        if (keys.length > 0) await redis.del(keys);
      }
      await redis.close();
    }
    if (pgProblem === undefined) {
      for (const name of tables) {
        await pool.query(`DROP TABLE IF EXISTS ${pg.escapeIdentifier(name)}`);
        // The functions of the locked calls (a table's lease table has none).
        for (const fn of [`${name}_lease_read`, `${name}_save_release`]) {
          await pool.query(`DROP FUNCTION IF EXISTS ${pg.escapeIdentifier(fn)}`);
        }
      }
    }
    await pool.end();
  },
});
