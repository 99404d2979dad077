/**
 * The storages the multi-process benchmark runs on, one entry each. An entry
 * opens, in a bot process, the storage a run uses (sessionkit's, or the one
 * grammY's own `session()` runs on) with its client wrapped by a round-trip
 * counter (./counting.ts), and drops what the runs left behind.
 *
 * Adding a backend is one entry in `BACKENDS` below: a `probe` that says why
 * it cannot run (or `undefined`), an `open`, and a `cleanup`. For example,
 * PostgreSQL behind pgbouncer is `postgres("pgbouncer", PGBOUNCER_URL, ...)`,
 * and Redis Cluster an entry whose `open` makes the client with
 * `createCluster` and wraps it with the same `countRedis`.
 *
 * @module
 */

import { isLeaseStorage, type StorageAdapter } from "../../mod.ts";
import { Counter, countKv, countMysql, countPg, countRedis, countSqlite } from "./counting.ts";
import type { Data } from "./workload.ts";

/** Whose session middleware a run uses. */
export type Library = "sessionkit" | "grammY";

/** Where a run's sessions live: its own namespace, and a directory for files. */
export interface Place {
  /** A name unique to the run: a key prefix, a table name, a file name. */
  ns: string;
  /** A temporary directory for file-backed storages. */
  dir: string;
}

/** A storage opened in one process. */
export interface Opened {
  /** The storage: sessionkit's, or the adapter grammY's `session()` runs on. */
  storage: StorageAdapter<Data>;
  /** The `prefix` option to give grammY's `session()`, if any. */
  prefix?: string;
  /** Round trips sent through the client so far. */
  counter: Counter;
  /** Closes the client. */
  close(): Promise<void>;
}

/** One storage the benchmark can run on. */
export interface Backend {
  /** The name on the command line (`--backends redis,postgres`). */
  name: string;
  /** What the report calls it. */
  label: string;
  /** What grammY's own `session()` runs on for this backend. */
  grammy: string;
  /** Why it cannot run here (server unreachable), or `undefined`. */
  probe(): Promise<string | undefined>;
  /** Run once in the main process before a run's bots start (tables, files). */
  prepare(place: Place, library: Library): Promise<void>;
  /** Opens the storage of `library` for `place`, with up to `pool` connections. */
  open(place: Place, library: Library, pool: number): Promise<Opened>;
  /** Drops everything the runs of `places` left on the server. */
  cleanup(places: Place[]): Promise<void>;
}

const REDIS_URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL = Deno.env.get("MYSQL_URL") ?? "mysql://root@127.0.0.1:3306/test";

/**
 * Creates a SQL storage's tables before several processes would race to
 * create them (CREATE TABLE IF NOT EXISTS from two connections at once can
 * fail), and so that no run's measured window waits for DDL: a read creates
 * the session table, a lease taken and given back the lease table.
 */
async function createTables(opened: Opened): Promise<void> {
  try {
    await opened.storage.read("0");
    const storage = opened.storage;
    if (isLeaseStorage(storage)) {
      if (await storage.acquireLease("0", "prepare", 1000)) {
        await storage.releaseLease("0", "prepare");
      }
    }
  } finally {
    await opened.close();
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function nodeRedis(url: string) {
  const { createClient } = await import("npm:redis@^5");
  const client = createClient({ url, socket: { connectTimeout: 3000, reconnectStrategy: false } });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** Redis: sessionkit's `RedisStorage` on node-redis; grammY on `@grammyjs/storage-redis` + ioredis. */
export function redis(name = "redis", url = REDIS_URL, label = "Redis"): Backend {
  return {
    name,
    label,
    grammy: "@grammyjs/storage-redis (ioredis)",
    async probe() {
      try {
        const client = await nodeRedis(url);
        await client.ping();
        client.destroy();
      } catch (err) {
        return `${url}: ${message(err)}`;
      }
    },
    prepare: () => Promise.resolve(),
    async open(place, library) {
      const counter = new Counter();
      const prefix = `${place.ns}:`;
      if (library === "sessionkit") {
        const { RedisStorage } = await import("../../storages/redis.ts");
        const client = countRedis(await nodeRedis(url), counter);
        return {
          storage: new RedisStorage<Data>(client, { prefix }),
          counter,
          close: () => Promise.resolve(client.destroy()),
        };
      }
      const { Redis } = await import("npm:ioredis@^5");
      const { RedisAdapter } = await import("npm:@grammyjs/storage-redis@^2");
      const io = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await io.connect();
      countRedis(io, counter);
      return {
        storage: new RedisAdapter({ instance: io }) as StorageAdapter<Data>,
        prefix,
        counter,
        close: () => Promise.resolve(io.disconnect()),
      };
    },
    async cleanup(places) {
      const client = await nodeRedis(url);
      try {
        for (const place of places) {
          for await (const keys of client.scanIterator({ MATCH: `${place.ns}:*`, COUNT: 1000 })) {
            if (keys.length > 0) await client.del(keys);
          }
        }
      } finally {
        client.destroy();
      }
    },
  };
}

async function pgPool(url: string, max: number) {
  const { default: pg } = await import("npm:pg@^8");
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5000 });
  pool.on("error", () => {});
  return pool;
}

/** PostgreSQL: sessionkit's `PostgresStorage`; grammY on `@grammyjs/storage-psql`. Both on `pg`. */
export function postgres(name = "postgres", url = DATABASE_URL, label = "PostgreSQL"): Backend {
  const entry: Backend = {
    name,
    label,
    grammy: "@grammyjs/storage-psql (pg)",
    async probe() {
      const pool = await pgPool(url, 1);
      try {
        await pool.query("SELECT 1");
      } catch (err) {
        return `${url}: ${message(err)}`;
      } finally {
        await pool.end().catch(() => {});
      }
    },
    prepare: async (place, library) => await createTables(await entry.open(place, library, 1)),
    async open(place, library, max) {
      const counter = new Counter();
      const pool = await pgPool(url, max);
      const db = countPg(pool, counter);
      const close = () => pool.end();
      if (library === "sessionkit") {
        const { PostgresStorage } = await import("../../storages/postgres.ts");
        return { storage: new PostgresStorage<Data>(db, { table: place.ns }), counter, close };
      }
      const { PsqlAdapter } = await import("npm:@grammyjs/storage-psql@^2");
      const storage = await PsqlAdapter.create({
        tableName: place.ns,
        // deno-lint-ignore no-explicit-any
        client: db as any,
      }) as StorageAdapter<Data>;
      return { storage, counter, close };
    },
    async cleanup(places) {
      const pool = await pgPool(url, 1);
      try {
        for (const { ns } of places) {
          await pool.query(`DROP TABLE IF EXISTS "${ns}", "${ns}_leases"`);
        }
      } finally {
        await pool.end();
      }
    },
  };
  return entry;
}

/** MySQL/MariaDB: sessionkit's `MysqlStorage` on mysql2; grammY's `session()` on the same storage. */
export function mysql(name = "mysql", url = MYSQL_URL, label = "MySQL (MariaDB)"): Backend {
  const pool = async (limit: number) => {
    const { default: mysql2 } = await import("npm:mysql2@^3/promise");
    return mysql2.createPool({ uri: url, connectionLimit: limit, connectTimeout: 5000 });
  };
  const entry: Backend = {
    name,
    label,
    grammy: "sessionkit's MysqlStorage",
    async probe() {
      const p = await pool(1);
      try {
        await p.query("SELECT 1");
      } catch (err) {
        return `${url}: ${message(err)}`;
      } finally {
        await p.end().catch(() => {});
      }
    },
    prepare: async (place) => await createTables(await entry.open(place, "sessionkit", 1)),
    async open(place, _library, limit) {
      const { MysqlStorage } = await import("../../storages/mysql.ts");
      const counter = new Counter();
      const p = await pool(limit);
      return {
        storage: new MysqlStorage<Data>(countMysql(p, counter), { table: place.ns }),
        counter,
        close: () => p.end(),
      };
    },
    async cleanup(places) {
      const p = await pool(1);
      try {
        for (const { ns } of places) {
          await p.query(`DROP TABLE IF EXISTS \`${ns}\`, \`${ns}_leases\``);
        }
      } finally {
        await p.end();
      }
    },
  };
  return entry;
}

/** Deno KV on a file all processes open: sessionkit's `DenoKvStorage`, for both libraries. */
export function denokv(name = "denokv", label = "Deno KV (file)"): Backend {
  return {
    name,
    label,
    grammy: "sessionkit's DenoKvStorage",
    probe: () => Promise.resolve(typeof Deno.openKv === "function" ? undefined : "no Deno.openKv"),
    prepare: () => Promise.resolve(),
    async open(place) {
      const { DenoKvStorage } = await import("../../storages/denokv.ts");
      const counter = new Counter();
      const kv = await Deno.openKv(`${place.dir}/${place.ns}.kv`);
      return {
        storage: new DenoKvStorage<Data>(countKv(kv, counter), { prefix: ["mp"] }),
        counter,
        close: () => Promise.resolve(kv.close()),
      };
    },
    cleanup: () => Promise.resolve(), // the files go with the temporary directory
  };
}

/** SQLite on one WAL file all processes open (`node:sqlite`): sessionkit's `SqliteStorage`. */
export function sqlite(name = "sqlite", label = "SQLite (WAL file)"): Backend {
  return {
    name,
    label,
    grammy: "sessionkit's SqliteStorage",
    probe: () => Promise.resolve(undefined),
    async prepare(place) {
      // WAL is a property of the file: set it once, before the bots open it.
      const { DatabaseSync } = await import("node:sqlite");
      const db = new DatabaseSync(`${place.dir}/${place.ns}.sqlite`);
      db.exec("PRAGMA journal_mode = WAL");
      db.close();
    },
    async open(place) {
      const { DatabaseSync } = await import("node:sqlite");
      const { SqliteStorage } = await import("../../storages/sqlite.ts");
      const counter = new Counter();
      const db = new DatabaseSync(`${place.dir}/${place.ns}.sqlite`);
      db.exec("PRAGMA synchronous = NORMAL");
      const storage = new SqliteStorage<Data>(countSqlite(db, counter), { table: "sessions" });
      return { storage, counter, close: () => storage.close().then(() => db.close()) };
    },
    cleanup: () => Promise.resolve(),
  };
}

/** Every backend, in the order the report lists them. Add new ones here. */
export const BACKENDS: Backend[] = [redis(), postgres(), denokv(), sqlite(), mysql()];
