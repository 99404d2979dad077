/**
 * The storages the Telegraf tests (tests/telegraf_test.ts,
 * tests/telegraf_regressions_test.ts) run on: memory, Deno KV (temporary
 * file), Redis, PostgreSQL, SQLite and MySQL, each registered with its
 * environment's test function (skipped loudly without a server, failing with
 * CI=true), and `withNamespace`, which gives a test a fresh namespace of one
 * of them and a fake Bot API, both closed afterwards.
 */
import { type ConditionalStorage, MemorySessionStorage, type StorageAdapter } from "../../mod.ts";
import { DenoKvStorage } from "../../storages/denokv.ts";
import { MysqlStorage } from "../../storages/mysql.ts";
import { PostgresStorage } from "../../storages/postgres.ts";
import { type FakeBotApi, startFakeBotApi } from "../fixtures/fake_bot_api.ts";
import { RedisFixture, redisTest, uniquePrefix } from "../redis_env.ts";
import * as pgEnv from "../postgres_setup.ts";
import * as myEnv from "../mysql_setup.ts";
import { SqliteFiles } from "../sqlite_env.ts";

/** A storage with conditional writes, as `telegrafStore` takes it. */
export type BackendStorage<T> = StorageAdapter<T> & ConditionalStorage<T>;

/** One namespace (prefix, table or file) of a backend. */
export interface Namespace<T> {
  /** A new storage instance on it, as another process or a restarted one would open. */
  open(): Promise<BackendStorage<T>>;
  /** Closes every instance and removes the namespace. */
  close(): Promise<void>;
}

/** A storage kind, with the test function that skips or fails it without its server. */
export interface Backend<T> {
  name: string;
  register(name: string, fn: () => Promise<void>): void;
  /** A fresh namespace; `ttl` (milliseconds) is passed to every storage opened on it. */
  namespace(ttl?: number): Promise<Namespace<T>>;
}

/** How a test file names what it creates, so that two files never share a namespace. */
export interface BackendNames {
  /** The prefix of the temporary directory holding the Deno KV file, e.g. `"sk-telegraf-kv-"`. */
  kvDir: string;
  /** The middle of PostgreSQL and MySQL table names: `<RUN>_<table>_<random>`. */
  table: string;
}

const plainTest = (name: string, fn: () => Promise<void>) => Deno.test(name, fn);

/** Every backend, for sessions of type `T`, naming what it creates after `names`. */
export function telegrafBackends<T>(names: BackendNames): Backend<T>[] {
  return [
    {
      name: "MemorySessionStorage",
      register: plainTest,
      namespace(ttl) {
        // Memory lives in the process: "another process" is another bot on the same map.
        const storage = new MemorySessionStorage<T>({ ttl });
        return Promise.resolve({ open: () => Promise.resolve(storage), close: async () => {} });
      },
    },
    {
      name: "DenoKvStorage",
      register: plainTest,
      async namespace(ttl) {
        const dir = await Deno.makeTempDir({ prefix: names.kvDir });
        const kvs: Deno.Kv[] = [];
        return {
          async open() {
            const kv = await Deno.openKv(`${dir}/sessions.kv`);
            kvs.push(kv);
            return new DenoKvStorage<T>(kv, { prefix: ["telegraf"], ttl });
          },
          async close() {
            for (const kv of kvs) kv.close();
            await Deno.remove(dir, { recursive: true });
          },
        };
      },
    },
    {
      name: "RedisStorage",
      register: redisTest,
      namespace(ttl) {
        const fixture = new RedisFixture();
        const prefix = uniquePrefix();
        return Promise.resolve({
          open: () => fixture.connect<T>({ prefix, ttl }),
          close: () => fixture.cleanup(),
        });
      },
    },
    {
      name: "PostgresStorage",
      register: pgEnv.pgTest,
      namespace(ttl) {
        const table = `${pgEnv.RUN}_${names.table}_${crypto.randomUUID().slice(0, 8)}`;
        const storages: PostgresStorage<T>[] = [];
        return Promise.resolve({
          open() {
            const storage = PostgresStorage.connect<T>(pgEnv.DATABASE_URL, { table, ttl });
            storages.push(storage);
            return Promise.resolve(storage);
          },
          async close() {
            for (const storage of storages) await storage.close();
            const db = await pgEnv.admin();
            try {
              if (storages[0] !== undefined) await pgEnv.dropTables(db, storages[0]);
            } finally {
              await db.end();
            }
          },
        });
      },
    },
    {
      name: "SqliteStorage",
      register: plainTest,
      namespace(ttl) {
        const files = new SqliteFiles();
        const path = files.path();
        return Promise.resolve({
          // A handle of its own per instance, in WAL mode, as separate processes would have.
          open: () => Promise.resolve(files.storage<T>(path, { table: "telegraf", ttl }, true)),
          close: () => Promise.resolve(files.cleanup()),
        });
      },
    },
    {
      name: "MysqlStorage",
      register: myEnv.mysqlTest,
      namespace(ttl) {
        const table = `${myEnv.RUN}_${names.table}_${crypto.randomUUID().slice(0, 8)}`;
        const storages: MysqlStorage<T>[] = [];
        return Promise.resolve({
          open() {
            const storage = MysqlStorage.connect<T>(myEnv.MYSQL_URL, { table, ttl });
            storages.push(storage);
            return Promise.resolve(storage);
          },
          async close() {
            for (const storage of storages) await storage.close();
            const db = myEnv.admin();
            try {
              if (storages[0] !== undefined) await myEnv.dropTables(db, storages[0]);
            } finally {
              await db.end();
            }
          },
        });
      },
    },
  ];
}

/**
 * Runs `fn` with a fresh namespace of `backend` (its storages opened with
 * `ttl`, if given) and a fake Bot API, both closed afterwards.
 */
export async function withNamespace<T>(
  backend: Backend<T>,
  fn: (ns: Namespace<T>, api: FakeBotApi) => Promise<void>,
  ttl?: number,
): Promise<void> {
  const api = startFakeBotApi({ tls: false });
  const ns = await backend.namespace(ttl);
  try {
    await fn(ns, api);
  } finally {
    await ns.close();
    await api.close();
  }
}
