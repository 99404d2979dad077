/**
 * Issue #18: a locked update costs as few round trips as grammY's unlocked
 * one. Through a real `Bot`, on a real Redis and PostgreSQL, the round trips
 * are counted where they leave the process (the client's `sendCommand`, the
 * pool's `query`): the lease is taken with the read and given up with the
 * write, two round trips for an update that changes its session (grammY's
 * `session()` without any lock: its read and its write). A storage subclass
 * that overrides a method the joined calls stand for gets the separate
 * calls, its override seeing every one (rule A1).
 */

import assert from "node:assert/strict";
import { session as grammySession } from "npm:grammy@^1.46";
import type { Context } from "npm:grammy@^1.46";
import { createClient } from "npm:redis@^5";
import pg from "npm:pg@^8";
import { lazySession, session, type SessionFlavor, type StorageAdapter } from "../mod.ts";
import type { LazySessionFlavor } from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { createHarness, message } from "./helpers/bot.ts";
import { deleteUnder, REDIS_URL, redisTest, uniquePrefix } from "./redis_env.ts";
import { DATABASE_URL, dropTables, pgTest } from "./postgres_setup.ts";

type Data = { count: number };
type Strict = Context & SessionFlavor<Data>;
type Lazy = Context & LazySessionFlavor<Data>;

/** A backend whose round trips are counted; `fresh` makes a storage on a new namespace. */
interface Counted {
  trips: () => number;
  storage(subclass?: "sealing" | "opening"): Promise<StorageAdapter<Data>>;
  /** What storage holds for `key`, read around the counter. */
  stored(key: string): Promise<Data | undefined>;
  close(): Promise<void>;
}

/** Marks a stored value so that the test can tell the override ran. */
function sealed(value: Data): Data {
  return { count: value.count, sealed: true } as Data;
}

/** Marks a read value so that the test can tell the override ran. */
function opened(value: Data): Data {
  return { ...value, opened: ((value as { opened?: number }).opened ?? 0) + 1 } as Data;
}

async function countedRedis(): Promise<Counted> {
  const client = createClient({ url: REDIS_URL });
  client.on("error", () => {});
  await client.connect();
  let trips = 0;
  const counting = {
    sendCommand: (args: string[]) => {
      trips++;
      return client.sendCommand(args);
    },
  };
  const prefixes: string[] = [];
  class Sealing<T> extends RedisStorage<T> {
    override writeIfVersion(key: string, value: T, expected: string | null) {
      return super.writeIfVersion(key, sealed(value as Data) as T, expected);
    }
  }
  class Opening<T> extends RedisStorage<T> {
    override async readVersioned(key: string) {
      const read = await super.readVersioned(key);
      return read.value === undefined ? read : { ...read, value: opened(read.value as Data) as T };
    }
  }
  let last: RedisStorage<Data> | undefined;
  return {
    trips: () => trips,
    storage(subclass) {
      const prefix = uniquePrefix();
      prefixes.push(prefix, `sessionkit-lease:${prefix}`);
      const storage = subclass === "sealing"
        ? new Sealing<Data>(counting as never, { prefix })
        : subclass === "opening"
        ? new Opening<Data>(counting as never, { prefix })
        : new RedisStorage<Data>(counting as never, { prefix });
      last = storage;
      return Promise.resolve(storage);
    },
    async stored(key) {
      const before = trips;
      const value = await last!.read(key);
      trips = before;
      return value;
    },
    async close() {
      for (const prefix of prefixes) await deleteUnder(client as never, prefix);
      await client.close();
    },
  };
}

function countedPostgres(): Promise<Counted> {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
  pool.on("error", () => {});
  let trips = 0;
  const counting = {
    query: (text: string, values?: unknown[]) => {
      trips++;
      return pool.query(text, values);
    },
  };
  const made: PostgresStorage<Data>[] = [];
  class Sealing<T> extends PostgresStorage<T> {
    override writeIfVersion(key: string, value: T, expected: string | null) {
      return super.writeIfVersion(key, sealed(value as Data) as T, expected);
    }
  }
  class Opening<T> extends PostgresStorage<T> {
    override async readVersioned(key: string) {
      const read = await super.readVersioned(key);
      return read.value === undefined ? read : { ...read, value: opened(read.value as Data) as T };
    }
  }
  return Promise.resolve({
    trips: () => trips,
    async storage(subclass) {
      const table = `sk_trips_${crypto.randomUUID().slice(0, 8)}`;
      const storage = subclass === "sealing"
        ? new Sealing<Data>(counting as never, { table })
        : subclass === "opening"
        ? new Opening<Data>(counting as never, { table })
        : new PostgresStorage<Data>(counting as never, { table });
      made.push(storage);
      // Creates the tables outside the counted updates.
      await storage.acquireLease("warm-up", "warm-up", 1000);
      await storage.releaseLease("warm-up", "warm-up");
      await storage.write("warm-up", { count: 0 });
      return storage;
    },
    async stored(key) {
      const before = trips;
      const value = await made[made.length - 1].read(key);
      trips = before;
      return value;
    },
    async close() {
      for (const storage of made) {
        await dropTables(pool, storage);
      }
      await pool.end();
    },
  });
}

/** Round trips of one update of chat `chat` that adds one to its count. */
async function tripsOfIncrement(
  backend: Counted,
  use: (bot: ReturnType<typeof createHarness<Strict>>["bot"]) => void,
  chat: number,
  lazy = false,
): Promise<number> {
  const h = createHarness<Strict & Lazy>();
  use(h.bot as never);
  h.bot.on("message", async (ctx) => {
    if (lazy) {
      const s = await (ctx as unknown as Lazy).session;
      s.count++;
    } else {
      ctx.session.count++;
    }
  });
  await h.send(message(chat)); // the first update of the chat creates it
  assert.deepEqual(h.errors, []);
  const before = backend.trips();
  await h.send(message(chat));
  assert.deepEqual(h.errors.map(String), []);
  return backend.trips() - before;
}

/** Round trips of one update of chat `chat` that only reads its count. */
async function tripsOfRead(backend: Counted, storage: StorageAdapter<Data>): Promise<number> {
  const h = createHarness<Strict>();
  h.bot.use(session({ storage, initial: () => ({ count: 0 }), lock: {} }));
  let seen = -1;
  h.bot.on("message", (ctx) => void (seen = ctx.session.count));
  await h.send(message(7));
  const before = backend.trips();
  await h.send(message(7));
  assert.deepEqual(h.errors, []);
  assert.equal(seen, 0);
  return backend.trips() - before;
}

function suite(name: string, open: () => Promise<Counted>) {
  return async (t: Deno.TestContext) => {
    const backend = await open();
    try {
      await t.step(
        `${name}: a locked update that changes its session: 2 round trips, as grammY's unlocked one`,
        async () => {
          const storage = await backend.storage();
          const mine = await tripsOfIncrement(
            backend,
            (bot) => bot.use(session({ storage, initial: () => ({ count: 0 }), lock: {} })),
            1,
          );
          assert.deepEqual(await backend.stored("1"), { count: 2 });
          const theirs = await tripsOfIncrement(
            backend,
            (bot) => bot.use(grammySession({ storage, initial: () => ({ count: 0 }) }) as never),
            2,
          );
          assert.deepEqual(await backend.stored("2"), { count: 2 });
          assert.equal(theirs, 2, "grammY: a read and a write");
          assert.equal(mine, 2, "sessionkit with lock: lease + read, write + release");
        },
      );

      await t.step(
        `${name}: a locked lazy update that changes its session: 2 round trips`,
        async () => {
          const storage = await backend.storage();
          const trips = await tripsOfIncrement(
            backend,
            (bot) => bot.use(lazySession({ storage, initial: () => ({ count: 0 }), lock: {} })),
            3,
            true,
          );
          assert.deepEqual(await backend.stored("3"), { count: 2 });
          assert.equal(trips, 2);
        },
      );

      await t.step(`${name}: a locked update that only reads: 2 round trips`, async () => {
        const storage = await backend.storage();
        assert.equal(await tripsOfRead(backend, storage), 2);
      });

      await t.step(
        `${name}: a subclass overriding writeIfVersion sees every write (3 round trips)`,
        async () => {
          const storage = await backend.storage("sealing");
          const trips = await tripsOfIncrement(
            backend,
            (bot) => bot.use(session({ storage, initial: () => ({ count: 0 }), lock: {} })),
            4,
          );
          assert.deepEqual(await backend.stored("4"), { count: 2, sealed: true });
          assert.equal(trips, 3, "lease + read; conditional write; release");
        },
      );

      await t.step(
        `${name}: a subclass overriding readVersioned sees every read (3 round trips)`,
        async () => {
          const storage = await backend.storage("opening");
          const trips = await tripsOfIncrement(
            backend,
            (bot) => bot.use(session({ storage, initial: () => ({ count: 0 }), lock: {} })),
            6,
          );
          // The first update read nothing; the second read through the override.
          assert.deepEqual(await backend.stored("6"), { count: 2, opened: 1 });
          assert.equal(trips, 3, "lease; read; write + release");
        },
      );

      await t.step(
        `${name}: two bots on one storage, 40 locked updates of one chat, none lost`,
        async () => {
          const storage = await backend.storage();
          const bots = [0, 1].map(() => {
            const h = createHarness<Strict>();
            h.bot.use(session({ storage, initial: () => ({ count: 0 }), lock: { wait: 20_000 } }));
            // Updates of one key in one process share its live value (docs/semantics.md),
            // so the increment itself is synchronous; the lease keeps the processes apart.
            h.bot.on("message", async (ctx) => {
              await new Promise((r) => setTimeout(r, Math.random() * 3));
              ctx.session.count++;
            });
            return h;
          });
          await Promise.all(
            Array.from({ length: 40 }, (_, i) => bots[i % 2].send(message(5))),
          );
          for (const h of bots) assert.deepEqual(h.errors.map(String), []);
          assert.deepEqual(await backend.stored("5"), { count: 40 });
        },
      );
    } finally {
      await backend.close();
    }
  };
}

redisTest("locked round trips on Redis", suite("Redis", countedRedis));
pgTest("locked round trips on PostgreSQL", suite("PostgreSQL", countedPostgres));
