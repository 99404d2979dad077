/**
 * sessionkit's storages (memory, Deno KV on a temporary file, Redis,
 * PostgreSQL, SQLite, MySQL/MariaDB) inside grammY's own `session()` and
 * `lazySession()`, bare and wrapped in grammY's `enhanceStorage` (migrations
 * and a TTL): counting across updates, a restart (a new Bot and a new storage
 * instance over the same data), deleting with `ctx.session = undefined` and
 * `null`. Every scenario also runs on sessionkit's own middleware and
 * `enhanceStorage` over the same storage, with the same outcome but for the
 * documented differences (see adapters_shared.ts).
 */
import { MemorySessionStorage, type StorageAdapter } from "../../mod.ts";
import { DenoKvStorage } from "../../storages/denokv.ts";
import { MysqlStorage } from "../../storages/mysql.ts";
import { PostgresStorage } from "../../storages/postgres.ts";
import { RedisStorage } from "../../storages/redis.ts";
import { MysqlFixture, whenReachable as whenMysql } from "../mysql_setup.ts";
import { dropTables, pg, RUN, whenReachable as whenPostgres } from "../postgres_setup.ts";
import { DATABASE_URL } from "../postgres_setup.ts";
import { RedisFixture, redisTest, uniquePrefix } from "../redis_env.ts";
import { SqliteFiles } from "../sqlite_env.ts";
import { assertCounterParity, assertEnhanceParity, KINDS, type Space } from "./adapters_shared.ts";

/** A space over a sessionkit storage: `open()` makes a new instance over the same data. */
function storageSpace(
  name: string,
  open: () => Promise<StorageAdapter<unknown>>,
  close: () => Promise<void>,
): Space {
  let probe: StorageAdapter<unknown> | undefined;
  const inspector = async () => probe ??= await open();
  return {
    name,
    prefix: "",
    adapter: open,
    stored: async (key) => (await (await inspector()).read(key)) ?? undefined,
    put: async (key, value) => await (await inspector()).write(key, value),
    close,
  };
}

const memory = (): Promise<Space> => {
  const storage = new MemorySessionStorage<unknown>();
  // Memory cannot outlive a process: the "restart" is a new Bot on the same instance.
  return Promise.resolve(storageSpace("memory", () => Promise.resolve(storage), async () => {}));
};

const denoKv = (): Promise<Space> => {
  const dir = Deno.makeTempDirSync({ prefix: "sk-grammy-kv-" });
  const kvs: Deno.Kv[] = [];
  return Promise.resolve(storageSpace("Deno KV", async () => {
    const kv = await Deno.openKv(`${dir}/sessions.kv`);
    kvs.push(kv);
    return new DenoKvStorage<unknown>(kv);
  }, async () => {
    for (const kv of kvs) kv.close();
    await Deno.remove(dir, { recursive: true });
  }));
};

const redis = (): Promise<Space> => {
  const f = new RedisFixture();
  const prefix = f.track(uniquePrefix());
  return Promise.resolve(storageSpace(
    "Redis",
    async () => new RedisStorage<unknown>(await f.admin(), { prefix }),
    () => f.cleanup(),
  ));
};

const postgres = (): Promise<Space> => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL });
  pool.on("error", () => {});
  const table = `${RUN}_grammy_${crypto.randomUUID().slice(0, 8)}`;
  const storages: PostgresStorage<unknown>[] = [];
  return Promise.resolve(storageSpace("PostgreSQL", () => {
    const storage = new PostgresStorage<unknown>(pool, { table });
    storages.push(storage);
    return Promise.resolve(storage);
  }, async () => {
    try {
      for (const storage of storages) await storage.close();
      if (storages.length > 0) await dropTables(pool, storages[0]);
    } finally {
      await pool.end();
    }
  }));
};

const sqlite = (): Promise<Space> => {
  const files = new SqliteFiles();
  const path = files.path();
  return Promise.resolve(
    storageSpace("SQLite", () => Promise.resolve(files.storage<unknown>(path)), () => {
      files.cleanup();
      return Promise.resolve();
    }),
  );
};

const mysql = (): Promise<Space> => {
  const f = new MysqlFixture();
  const table = f.table("grammy");
  return Promise.resolve(storageSpace(
    "MySQL",
    () => Promise.resolve(f.track(new MysqlStorage<unknown>(f.pool, { table }))),
    () => f.cleanup(),
  ));
};

type Register = (name: string, fn: (t: Deno.TestContext) => Promise<void>) => void;
const plain: Register = (name, fn) => Deno.test(name, fn);
const SPACES: [string, () => Promise<Space>, Register][] = [
  ["MemorySessionStorage", memory, plain],
  ["DenoKvStorage", denoKv, plain],
  ["RedisStorage", redis, redisTest],
  ["PostgresStorage", postgres, (name, fn) => whenPostgres(name, () => Deno.test(name, fn))],
  ["SqliteStorage", sqlite, plain],
  ["MysqlStorage", mysql, (name, fn) => whenMysql(name, () => Deno.test(name, fn))],
];

for (const [name, open, register] of SPACES) {
  register(`${name} in grammY's session()/lazySession(): count, restart, delete`, async (t) => {
    for (const kind of KINDS) await t.step(kind, () => assertCounterParity(open, kind));
  });
  register(`${name} in grammY's enhanceStorage: migrations and TTL`, async (t) => {
    for (const kind of KINDS) await t.step(kind, () => assertEnhanceParity(open, kind));
  });
}
