/**
 * The storages the multi-process benchmark runs on, one entry each. An entry
 * opens, in a bot process, the storage a run uses (sessionkit's, or the one
 * grammY's own `session()` runs on) with its client wrapped by a round-trip
 * counter (./counting.ts), and drops what the runs left behind.
 *
 * Adding a backend is one entry in `BACKENDS` below: a `probe` that says why
 * it cannot run (or `undefined`), an `open`, and a `cleanup`; and, for a
 * server the benchmark runs itself, a `start` and a `stop`. Redis Cluster and
 * PostgreSQL behind pgbouncer are such entries: the main process starts a
 * local six-node cluster (tests/fixtures/redis_cluster.ts) or a pgbouncer in
 * transaction pooling mode (tests/fixtures/pgbouncer.ts) once for the run,
 * and sets `REDIS_CLUSTER_URLS` or `PGBOUNCER_URL`, which the bot processes
 * inherit; with the variable already set, that server is used and nothing
 * is started.
 *
 * @module
 */

import { isLeaseStorage, type StorageAdapter } from "../../mod.ts";
import { Counter, countKv, countMysql, countPg, countRedis, countSqlite } from "./counting.ts";
import type { Data } from "./workload.ts";
// Types only: the fixtures are loaded by `start()`, in the main process.
import type { Pgbouncer } from "../../tests/fixtures/pgbouncer.ts";
import type { LocalCluster } from "../../tests/fixtures/redis_cluster.ts";

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
  /**
   * Starts what the backend runs on for the whole benchmark (a local
   * cluster, a pgbouncer), in the main process before the bot processes
   * start: they find it through the environment they inherit. Throws when
   * it cannot; whatever it started is then stopped again.
   */
  start?(): Promise<void>;
  /** Stops what `start` started, after `cleanup`. Does nothing the second time. */
  stop?(): Promise<void>;
}

const REDIS_URL = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL = Deno.env.get("MYSQL_URL") ?? "mysql://root@127.0.0.1:3306/test";
/** Seed nodes of a Redis Cluster, comma separated (set by `redisCluster().start()` if not given). */
const CLUSTER_ENV = "REDIS_CLUSTER_URLS";
/** pgbouncer's URL (set by `pgbouncer().start()` if not given). */
const PGBOUNCER_ENV = "PGBOUNCER_URL";
/** Server connections of the pgbouncer the benchmark starts: pgbouncer's own default. */
const PGBOUNCER_POOL = Number(Deno.env.get("PGBOUNCER_POOL_SIZE") ?? 20);

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
export function postgres(
  name = "postgres",
  where: string | (() => string) = DATABASE_URL,
  label = "PostgreSQL",
): Backend {
  const url = () => typeof where === "string" ? where : where();
  const entry: Backend = {
    name,
    label,
    grammy: "@grammyjs/storage-psql (pg)",
    async probe() {
      const pool = await pgPool(url(), 1);
      try {
        await pool.query("SELECT 1");
      } catch (err) {
        return `${url()}: ${message(err)}`;
      } finally {
        await pool.end().catch(() => {});
      }
    },
    prepare: async (place, library) => await createTables(await entry.open(place, library, 1)),
    async open(place, library, max) {
      const counter = new Counter();
      const pool = await pgPool(url(), max);
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
      const pool = await pgPool(url(), 1);
      try {
        for (const { ns } of places) {
          await pool.query(`DROP TABLE IF EXISTS "${ns}", "${ns}_leases"`);
          // The locked read's function (created on first use) outlives the tables.
          await pool.query(`DROP FUNCTION IF EXISTS "${ns}_lease_read"(text, text, float8)`);
          await pool.query(`DROP FUNCTION IF EXISTS "${ns}_save_release"`);
        }
      } finally {
        await pool.end();
      }
    },
  };
  return entry;
}

/**
 * PostgreSQL behind pgbouncer in transaction pooling mode, otherwise as
 * `postgres()`: sessionkit's `PostgresStorage` and `@grammyjs/storage-psql`
 * both connect through it (storage-psql sends unnamed statements only, which
 * transaction pooling passes through). Unless `PGBOUNCER_URL` is set, the
 * main process starts one in front of DATABASE_URL's server for the run
 * (tests/fixtures/pgbouncer.ts, transaction mode, `PGBOUNCER_POOL_SIZE`
 * server connections handed out round robin, default 20).
 */
export function pgbouncer(name = "pgbouncer"): Backend {
  const given = Deno.env.get(PGBOUNCER_ENV) !== undefined;
  const label = given
    ? "PostgreSQL via pgbouncer (transaction pooling)"
    : `PostgreSQL via pgbouncer (transaction pooling, ${PGBOUNCER_POOL} server connections)`;
  const entry = postgres(name, () => {
    const url = Deno.env.get(PGBOUNCER_ENV);
    if (url === undefined) throw new Error(`${PGBOUNCER_ENV} is not set: pgbouncer not started`);
    return url;
  }, label);
  let running: Pgbouncer | undefined;
  return {
    ...entry,
    async start() {
      if (Deno.env.get(PGBOUNCER_ENV) !== undefined) return;
      const direct = await postgres().probe();
      if (direct !== undefined) throw new Error(direct);
      const fixture = await import("../../tests/fixtures/pgbouncer.ts");
      if (fixture.PGBOUNCER === undefined) {
        throw new Error("pgbouncer is not installed (apt-get install pgbouncer, or set PGBOUNCER)");
      }
      running = await fixture.startPgbouncer({ poolMode: "transaction", poolSize: PGBOUNCER_POOL });
      Deno.env.set(PGBOUNCER_ENV, running.url);
    },
    async stop() {
      const bouncer = running;
      running = undefined;
      if (bouncer === undefined) return;
      Deno.env.delete(PGBOUNCER_ENV);
      await bouncer.stop();
    },
  };
}

/** The seed nodes of the cluster the bot processes use. */
function clusterUrls(): string[] {
  const urls = (Deno.env.get(CLUSTER_ENV) ?? "").split(",").filter((u) => u !== "");
  if (urls.length === 0) throw new Error(`${CLUSTER_ENV} is not set: no cluster started`);
  return urls;
}

async function nodeRedisCluster(urls: string[]) {
  const { createCluster } = await import("npm:redis@^5");
  const cluster = createCluster({
    rootNodes: urls.map((url) => ({ url })),
    defaults: { socket: { connectTimeout: 3000, reconnectStrategy: false } },
  });
  cluster.on("error", () => {});
  await cluster.connect();
  return cluster;
}

/**
 * Redis Cluster: sessionkit's `RedisStorage` on node-redis's `createCluster`;
 * grammY on `@grammyjs/storage-redis` with an ioredis `Cluster` (typed for
 * ioredis's `Redis`, it only calls `get`, `set` and `del`, which the Cluster
 * routes by key). Unless `REDIS_CLUSTER_URLS` is set, the main process starts
 * a local cluster of three masters and three replicas for the run
 * (tests/fixtures/redis_cluster.ts).
 */
export function redisCluster(name = "redis-cluster", label = "Redis Cluster"): Backend {
  let running: LocalCluster | undefined;
  return {
    name,
    label,
    grammy: "@grammyjs/storage-redis (ioredis Cluster)",
    async start() {
      if (Deno.env.get(CLUSTER_ENV) !== undefined) return;
      const fixture = await import("../../tests/fixtures/redis_cluster.ts");
      if (!fixture.clusterAvailable) throw new Error("redis-server or redis-cli is not available");
      const cluster = await fixture.LocalCluster.start();
      running = cluster;
      Deno.env.set(CLUSTER_ENV, cluster.urls.join(","));
    },
    async stop() {
      const cluster = running;
      running = undefined;
      if (cluster === undefined) return;
      Deno.env.delete(CLUSTER_ENV);
      await cluster.stop();
    },
    async probe() {
      try {
        const cluster = await nodeRedisCluster(clusterUrls());
        try {
          const info = String(await cluster.sendCommand(undefined, true, ["CLUSTER", "INFO"]));
          if (!info.includes("cluster_state:ok")) return `cluster not ok: ${info.split("\r\n")[0]}`;
        } finally {
          cluster.destroy();
        }
      } catch (err) {
        return `${Deno.env.get(CLUSTER_ENV)}: ${message(err)}`;
      }
    },
    prepare: () => Promise.resolve(),
    async open(place, library) {
      const counter = new Counter();
      const prefix = `${place.ns}:`;
      if (library === "sessionkit") {
        const { RedisStorage } = await import("../../storages/redis.ts");
        const cluster = countRedis(await nodeRedisCluster(clusterUrls()), counter);
        return {
          storage: new RedisStorage<Data>(cluster, { prefix }),
          counter,
          close: () => Promise.resolve(cluster.destroy()),
        };
      }
      const { Cluster, Redis } = await import("npm:ioredis@^5");
      const { RedisAdapter } = await import("npm:@grammyjs/storage-redis@^2");
      const seeds = clusterUrls().map((url) => {
        const { hostname, port } = new URL(url);
        return { host: hostname, port: Number(port || 6379) };
      });
      const io = new Cluster(seeds, {
        lazyConnect: true,
        redisOptions: { maxRetriesPerRequest: 1 },
      });
      await io.connect();
      countRedis(io, counter);
      return {
        // Typed for `Redis`; get, set and del are all it calls.
        storage: new RedisAdapter({
          instance: io as unknown as InstanceType<typeof Redis>,
        }) as StorageAdapter<Data>,
        prefix,
        counter,
        close: () => Promise.resolve(io.disconnect()),
      };
    },
    async cleanup(places) {
      const cluster = await nodeRedisCluster(clusterUrls());
      try {
        for (const master of cluster.masters) {
          const node = await cluster.nodeClient(master);
          for (const place of places) {
            // Session keys are `{ns:chat}`, leases `<lease prefix>{ns:chat}`, grammY's `ns:chat`;
            // keys of different slots cannot go in one DEL.
            const match = `*${place.ns}:*`;
            for await (const keys of node.scanIterator({ MATCH: match, COUNT: 1000 })) {
              await Promise.all(keys.map((key) => node.del(key)));
            }
          }
        }
      } finally {
        cluster.destroy();
      }
    },
  };
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
export const BACKENDS: Backend[] = [
  redis(),
  redisCluster(),
  postgres(),
  pgbouncer(),
  denokv(),
  sqlite(),
  mysql(),
];
