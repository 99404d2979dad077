/**
 * Spaces (see adapters_shared.ts) of `@grammyjs/storage-redis` on a real
 * Redis, through ioredis or node-redis, and of `@grammyjs/storage-psql` on a
 * real PostgreSQL, each with a unique key prefix or table per call, removed
 * by `close()`.
 */
import { RedisAdapter } from "npm:@grammyjs/storage-redis@^2";
import { PsqlAdapter } from "npm:@grammyjs/storage-psql@^2";
import { Redis } from "npm:ioredis@^5";
import { createClient } from "npm:redis@^5";
import type { StorageAdapter } from "../../mod.ts";
import { deleteUnder, openAdmin, REDIS_URL, uniquePrefix } from "../redis_env.ts";
import { admin, id, RUN } from "../postgres_setup.ts";
import type { Space } from "./adapters_shared.ts";

/** The Redis clients `@grammyjs/storage-redis` is used with. */
export type RedisLib = "ioredis" | "node-redis";
export const REDIS_LIBS: RedisLib[] = ["ioredis", "node-redis"];

/** The calls the adapter makes, and the tests' own look at Redis. */
export interface RedisLike {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<unknown>;
  del(key: string): Promise<number>;
  pttl(key: string): Promise<number>;
  pexpire(key: string, ms: number): Promise<unknown>;
  quit(): Promise<unknown>;
}

/** A connected client of `lib`. */
export async function redisClient(lib: RedisLib): Promise<{ client: unknown; raw: RedisLike }> {
  if (lib === "ioredis") {
    const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    return { client, raw: client as unknown as RedisLike };
  }
  const client = createClient({ url: REDIS_URL });
  client.on("error", () => {});
  await client.connect();
  return {
    client,
    raw: {
      get: (key) => client.get(key),
      set: (key, value) => client.set(key, value),
      del: (key) => client.del(key),
      pttl: (key) => client.pTTL(key),
      pexpire: (key, ms) => client.pExpire(key, ms),
      quit: () => client.quit(),
    },
  };
}

/** Options of `RedisAdapter` besides the client. */
export type RedisAdapterOptions = { ttl?: number; autoParseDates?: boolean };

/** A `@grammyjs/storage-redis` space over a client of `lib`, under a unique prefix. */
export async function redisSpace(
  lib: RedisLib,
  options: RedisAdapterOptions = {},
): Promise<Space & { raw: RedisLike }> {
  const { client, raw } = await redisClient(lib);
  const prefix = uniquePrefix();
  return {
    name: `@grammyjs/storage-redis (${lib})`,
    prefix,
    raw,
    adapter: () =>
      Promise.resolve(
        // The adapter is typed for ioredis; it calls only get, set and del.
        new RedisAdapter<unknown>({ instance: client as Redis, ...options }) as StorageAdapter<
          unknown
        >,
      ),
    async stored(key) {
      const text = await raw.get(prefix + key);
      return text === null ? undefined : JSON.parse(text);
    },
    async put(key, value) {
      await raw.set(prefix + key, JSON.stringify(value));
    },
    async close() {
      const admin = await openAdmin();
      try {
        await deleteUnder(admin, prefix);
      } finally {
        await admin.close();
        await raw.quit();
      }
    },
  };
}

/** A `@grammyjs/storage-psql` space over a pg Client, in a table of its own. */
export async function psqlSpace(): Promise<Space & { table: string }> {
  const db = await admin();
  const table = `${RUN}_psql_${crypto.randomUUID().slice(0, 8)}`;
  const created = await PsqlAdapter.create({ client: db, tableName: table });
  let first = true;
  return {
    name: "@grammyjs/storage-psql",
    prefix: "",
    table,
    async adapter() {
      if (first) {
        first = false;
        return created as StorageAdapter<unknown>;
      }
      return await PsqlAdapter.create({ client: db, tableName: table }) as StorageAdapter<unknown>;
    },
    async stored(key) {
      const { rows } = await db.query(`SELECT value FROM ${id(table)} WHERE key = $1`, [key]);
      return rows.length === 0 ? undefined : JSON.parse(rows[0].value);
    },
    async put(key, value) {
      await db.query(
        `INSERT INTO ${id(table)} (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = $2`,
        [key, JSON.stringify(value)],
      );
    },
    async close() {
      try {
        await db.query(`DROP TABLE IF EXISTS ${id(table)}`);
      } finally {
        await db.end();
      }
    },
  };
}
