/**
 * Fair turns with `lock` (docs/semantics.md, rule C7): a process whose
 * updates keep one key busy (each update taking the lease back right after
 * the last one gave it up, or updates overlapping so that the lease is never
 * given up) lets an update of another process that waits for the key go
 * next, within about a third of `lock.ttl`, instead of starving it until
 * `lock.wait` runs out (found by the long kill soak of #19, where one
 * process took a key back 320 times in a row and another failed after 30 s).
 *
 * Two middlewares on one storage stand for two processes (each has its own
 * lease owner). grammY's session has no lock, so there is nothing of
 * grammY's to compare with here.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { createClient } from "npm:redis@^5";
import type { Context } from "npm:grammy@^1.46";
import { MemorySessionStorage, session, type SessionFlavor } from "../mod.ts";
import type { StorageAdapter } from "../src/storage.ts";
import { RedisStorage } from "../storages/redis.ts";
import { SqliteStorage } from "../storages/sqlite.ts";
import { turnKey } from "../src/turns.ts";
import type { LeaseStorage } from "../src/capabilities.ts";
import { createHarness, message, sleep } from "./helpers/bot.ts";
import { REDIS_URL, redisTest } from "./redis_env.ts";
import { PostgresStorage } from "../storages/postgres.ts";
import { DATABASE_URL, dropTables, pg, pgTest, RUN } from "./postgres_setup.ts";

type N = { n: number };
type C = Context & SessionFlavor<N>;

const TTL = 300;

/** A bot whose handler adds one to the count and holds the key for `holdMs`. */
function counterBot(storage: StorageAdapter<N>, wait: number, holdMs: number, ttl = TTL) {
  const h = createHarness<C>();
  h.bot.use(session({ initial: () => ({ n: 0 }), storage, lock: { ttl, wait } }));
  h.bot.on("message", async (ctx) => {
    ctx.session.n++;
    await sleep(holdMs);
  });
  return h;
}

/**
 * Process A keeps chat 1 busy for `busyMs` with `inFlight` updates at a
 * time; each of `waiters` other processes sends one update of chat 1 after
 * 50 ms. Returns how long each waiter's update took and what all saw.
 */
async function contend(
  storage: StorageAdapter<N>,
  inFlight: number,
  waiters = 1,
  busyMs = 1500,
  lock?: { ttl: number; wait: number },
) {
  const a = lock ? counterBot(storage, lock.wait, 5, lock.ttl) : counterBot(storage, 5000, 5);
  const others = Array.from(
    { length: waiters },
    () => lock ? counterBot(storage, lock.wait, 5, lock.ttl) : counterBot(storage, 1500, 5),
  );
  let sentByA = 0;
  const end = Date.now() + busyMs;
  const stream = async () => {
    while (Date.now() < end) {
      sentByA++;
      await a.send(message(1));
    }
  };
  const streams = Array.from({ length: inFlight }, stream);
  await sleep(50);
  const waited = await Promise.all(others.map(async (b) => {
    const started = Date.now();
    await b.send(message(1));
    return Date.now() - started;
  }));
  await Promise.all(streams);
  return { a, others, sentByA, waited };
}

function check(result: Awaited<ReturnType<typeof contend>>, stored: N | undefined, bound: number) {
  const { a, others, sentByA, waited } = result;
  assert.deepEqual(a.errors.map((e) => String(e.error)), [], "process A failed updates");
  others.forEach((b, i) => {
    assert.deepEqual(
      b.errors.map((e) => String(e.error)),
      [],
      `waiter ${i}'s update waited ${waited[i]} ms and failed`,
    );
    assert.ok(waited[i] < bound, `waiter ${i} waited ${waited[i]} ms for its turn`);
  });
  assert.equal(stored?.n, sentByA + others.length, "every update of every process is counted");
  if (Deno.env.get("FAIRNESS_VERBOSE")) console.log(`waited ${waited} ms; A sent ${sentByA}`);
}

/** Nothing is left behind: neither the key's lease nor its turn is held by anyone. */
async function assertFree(storage: StorageAdapter<N>) {
  const leases = storage as unknown as LeaseStorage;
  for (const key of ["1", turnKey("1")]) {
    assert.ok(await leases.acquireLease(key, "probe", 100), `${key} is still held`);
    await leases.releaseLease(key, "probe");
  }
}

async function scenarios(t: Deno.TestContext, open: () => Promise<StorageAdapter<N>>) {
  // About ttl/3 for A to notice, plus a few holds.
  const bound = 2.5 * TTL;
  await t.step("updates taken back-to-back by one process", async () => {
    const storage = await open();
    check(await contend(storage, 1), await storage.read("1") as N | undefined, bound);
    await assertFree(storage);
  });
  await t.step("overlapping updates of one process, so its lease is never idle", async () => {
    const storage = await open();
    check(await contend(storage, 2), await storage.read("1") as N | undefined, bound);
    await assertFree(storage);
  });
  await t.step("overlapping updates, lock.wait much shorter than lock.ttl", async () => {
    const storage = await open();
    check(
      await contend(storage, 2, 1, 1500, { ttl: 3000, wait: 600 }),
      await storage.read("1") as N | undefined,
      600,
    );
    await assertFree(storage);
  });
  await t.step("three processes waiting for a busy key each get a turn", async () => {
    const storage = await open();
    check(await contend(storage, 1, 3), await storage.read("1") as N | undefined, 3 * bound);
    await assertFree(storage);
  });
}

Deno.test("lock fairness: memory storage", async (t) => {
  await scenarios(t, () => Promise.resolve(new MemorySessionStorage<N>()));
});

Deno.test("lock fairness: SQLite file", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sessionkit-fair-" });
  let n = 0;
  const dbs: DatabaseSync[] = [];
  try {
    await scenarios(t, () => {
      const db = new DatabaseSync(`${dir}/fair-${n++}.db`);
      dbs.push(db);
      return Promise.resolve(new SqliteStorage<N>(db));
    });
  } finally {
    for (const db of dbs) db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

redisTest("lock fairness: Redis", async (t) => {
  const client = createClient({ url: REDIS_URL });
  await client.connect();
  const prefix = `sessionkit-test:fair-${crypto.randomUUID().slice(0, 8)}:`;
  let n = 0;
  try {
    await scenarios(
      t,
      () => Promise.resolve(new RedisStorage<N>(client, { prefix: `${prefix}${n++}:` })),
    );
  } finally {
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
      const list = Array.isArray(keys) ? keys : [keys];
      if (list.length > 0) await client.del(list);
    }
    await client.quit();
  }
});

pgTest("lock fairness: PostgreSQL", async (t) => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 8 });
  const storages: PostgresStorage<N>[] = [];
  try {
    await scenarios(t, () => {
      const storage = new PostgresStorage<N>(pool, { table: `${RUN}_fair_${storages.length}` });
      storages.push(storage);
      return Promise.resolve(storage);
    });
  } finally {
    for (const storage of storages) await dropTables(pool, storage);
    await pool.end();
  }
});
