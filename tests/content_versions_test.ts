/**
 * C1 on a storage whose versions are made from the content: RedisStorage's
 * version of a session is its stored text, so another process can bring
 * back the very version a lost write expected. Process A's +1 lands but its
 * reply is lost; process B's -1 brings the text back to what A's write
 * expected; A's next save must not take "the version it expected" as "my
 * write never landed and nobody wrote", which wrote over B's acknowledged
 * change (attack20 F3). On a storage with unique versions (the memory
 * storage) the same run conflicts too. grammY's session has no conflict
 * detection: it writes over B's change in every such run.
 */
import assert from "node:assert/strict";
import type { Context } from "npm:grammy@^1.46";
import {
  type ConditionalStorage,
  MemorySessionStorage,
  session,
  type SessionFlavor,
  type StorageAdapter,
} from "../mod.ts";
import { RedisStorage } from "../storages/redis.ts";
import { RedisFixture, redisTest } from "./redis_env.ts";
import { createHarness, message } from "./helpers/bot.ts";

type Data = { count: number };
type C = Context & SessionFlavor<Data>;
type Both = ConditionalStorage<Data> & StorageAdapter<Data>;

/** Makes the next conditional write of `storage` land and then lose its reply. */
function loseNextReply(storage: ConditionalStorage<Data>): () => void {
  const original = storage.writeIfVersion.bind(storage);
  let armed = false;
  storage.writeIfVersion = async (key, value, expected) => {
    const version = await original(key, value, expected);
    if (armed && version !== null) {
      armed = false;
      throw new Error("connection reset (the reply was lost)");
    }
    return version;
  };
  return () => (armed = true);
}

/** A keeps key 1 busy; A +1 (reply lost), B -1, A +1. */
async function run(a: Both, b: Both) {
  await a.write("1", { count: 5 });
  const arm = loseNextReply(a);
  const ha = createHarness<C>();
  const hb = createHarness<C>();
  ha.bot.use(session({ initial: () => ({ count: 0 }), storage: a }));
  hb.bot.use(session({ initial: () => ({ count: 0 }), storage: b }));
  const held = Promise.withResolvers<void>();
  const go = Promise.withResolvers<void>();
  ha.bot.on("message", async (ctx) => {
    if (ctx.message.text === "hold") {
      held.resolve();
      await go.promise;
    } else ctx.session.count++;
  });
  hb.bot.on("message", (ctx) => void ctx.session.count--);
  const hold = ha.send(message(1, "hold"));
  await held.promise;
  arm();
  await ha.send(message(1, "+1")); // lands ({count: 6}); its reply is lost
  await hb.send(message(1, "-1")); // acknowledged: {count: 5} again
  const afterB = await b.readVersioned("1");
  await ha.send(message(1, "+1"));
  go.resolve();
  await hold;
  return {
    afterB: afterB.value,
    final: (await b.readVersioned("1")).value,
    aErrors: ha.errors.map((e) => (e.error as Error).name),
    bErrors: hb.errors.length,
  };
}

redisTest(
  "C1: after a lost reply, a Redis session brought back to the expected text by another process is a conflict, not 'never landed'",
  async () => {
    const f = new RedisFixture();
    try {
      const a = await f.storage<Data>();
      const b = new RedisStorage<Data>(await f.admin(), { prefix: a.prefix });
      assert.equal(a.uniqueVersions, false, "Redis versions are the stored text");
      const ours = await run(a, b);
      assert.equal(ours.bErrors, 0);
      assert.deepEqual(ours.afterB, { count: 5 });
      assert.deepEqual(ours.final, { count: 5 }, "B's acknowledged -1 stays");
      assert.equal(ours.aErrors.at(-1), "SessionConflictError");
    } finally {
      await f.cleanup();
    }
  },
);

Deno.test("C1: the same run on a storage with unique versions (memory) conflicts too", async () => {
  const storage = new MemorySessionStorage<Data>();
  assert.equal(storage.uniqueVersions, true);
  // Two "processes" (two middlewares, each with its own state) on one storage.
  const ours = await run(storage, storage);
  assert.equal(ours.bErrors, 0);
  assert.deepEqual(ours.final, { count: 5 });
  assert.equal(ours.aErrors.at(-1), "SessionConflictError");
});

Deno.test("uniqueVersions: declared by every sessionkit storage whose writes draw a new version, with its default options, and not by Redis", async () => {
  const { DatabaseSync } = await import("node:sqlite");
  const pg = (await import("npm:pg@^8")).default;
  const mysql = await import("npm:mysql2@^3/promise");
  const { PostgresStorage } = await import("../storages/postgres.ts");
  const { MysqlStorage } = await import("../storages/mysql.ts");
  const { SqliteStorage } = await import("../storages/sqlite.ts");
  const { DenoKvStorage } = await import("../storages/denokv.ts");
  const { enhanceStorage } = await import("../mod.ts");
  type Enhance<T> = import("../mod.ts").Enhance<T>;
  // Nothing below connects: the flag is known when the storage is made.
  const pool = new pg.Pool({ connectionString: "postgres://nobody@127.0.0.1:1/none" });
  const mysqlPool = mysql.createPool({ uri: "mysql://nobody@127.0.0.1:1/none" });
  const kv = await Deno.openKv(":memory:");
  const db = new DatabaseSync(":memory:");
  try {
    assert.equal(new MemorySessionStorage().uniqueVersions, true);
    assert.equal(new PostgresStorage(pool).uniqueVersions, true, "PostgreSQL, default timeout");
    assert.equal(new MysqlStorage(mysqlPool).uniqueVersions, true, "MySQL, default timeout");
    assert.equal(new SqliteStorage(db).uniqueVersions, true);
    assert.equal(new DenoKvStorage(kv).uniqueVersions, true);
    assert.equal(
      enhanceStorage<Data>({
        storage: new MemorySessionStorage<Enhance<Data>>(),
        millisecondsToLive: 1000,
      })
        .uniqueVersions,
      true,
    );
  } finally {
    await pool.end();
    await mysqlPool.end();
    kv.close();
    db.close();
  }
});
