/**
 * Shared setup of the PostgreSQL tests: the server at DATABASE_URL, a unique
 * name per run, an admin connection for looking at what is really stored,
 * and a skip (locally) or failure (CI=true) when the server is unreachable.
 */
// @ts-types="npm:@types/pg@^8"
import pg from "npm:pg@^8";
import type {
  PostgresQueryable,
  PostgresQueryResult,
  PostgresStorage,
} from "../storages/postgres.ts";
import { tableNames } from "../storages/postgres/sql.ts";

export { pg };

export const DATABASE_URL = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/test";

/** Unique per test run; every table and schema the tests make starts with it. */
export const RUN = `sk_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 7)}`;

async function probe(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

const unreachable = await probe();

/** Registers a PostgreSQL test, skipped loudly (or failing on CI) without a server. */
export function pgTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  whenReachable(name, () => Deno.test({ name, fn }));
}

/** Calls `register` if the server is there; otherwise skips loudly, or fails on CI. */
export function whenReachable(name: string, register: () => void): void {
  if (unreachable === undefined) {
    register();
  } else if (Deno.env.get("CI") === "true") {
    Deno.test(name, () => {
      throw new Error(`PostgreSQL at ${DATABASE_URL} is unreachable on CI: ${unreachable}`);
    });
  } else {
    console.error(
      `\n!!!!!!!! SKIPPING "${name}": PostgreSQL at ${DATABASE_URL} is unreachable ` +
        `(${unreachable}). Start it or set DATABASE_URL. !!!!!!!!\n`,
    );
    Deno.test({ name, ignore: true, fn: () => {} });
  }
}

/** A connected client for inspecting and preparing the database. */
export async function admin(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** Escapes an identifier the way the storage does. */
export const id: (name: string) => string = pg.escapeIdentifier;

/** Drops the session and lease tables of `storage`. */
export async function dropTables(
  db: PostgresQueryable,
  storage: { schema: string | undefined; table: string; leaseTable: string },
): Promise<void> {
  const q = (t: string) => (storage.schema === undefined ? "" : `${id(storage.schema)}.`) + id(t);
  await db.query(`DROP TABLE IF EXISTS ${q(storage.table)}, ${q(storage.leaseTable)}`);
  // The function of locked reads (created on first use) outlives its tables.
  const { leaseRead, saveRelease } = tableNames(storage.schema, storage.table);
  await db.query(`DROP FUNCTION IF EXISTS ${q(leaseRead)}(text, text, float8)`);
  await db.query(`DROP FUNCTION IF EXISTS ${q(saveRelease)}`);
}

/** Whether a table exists, by exact name. */
export async function tableExists(db: PostgresQueryable, table: string, schema = "public") {
  const { rows } = await db.query(
    "SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2",
    [schema, table],
  );
  return rows.length === 1;
}

/** A pass-through handle that records every statement sent to the real server. */
export class Recorder implements PostgresQueryable {
  readonly texts: string[] = [];
  constructor(readonly inner: PostgresQueryable) {}
  query(text: string, values?: unknown[]): Promise<PostgresQueryResult> {
    this.texts.push(text);
    return this.inner.query(text, values);
  }
}

/** Collects an async iterable. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of it) out.push(item);
  return out;
}

/** Runs `fn` with an admin client and a pool, dropping `storages`' tables afterwards. */
export async function withDb(
  fn: (db: pg.Client, pool: pg.Pool, storages: PostgresStorage<unknown>[]) => Promise<void>,
): Promise<void> {
  const db = await admin();
  const pool = new pg.Pool({ connectionString: DATABASE_URL });
  pool.on("error", () => {});
  const storages: PostgresStorage<unknown>[] = [];
  try {
    await fn(db, pool, storages);
  } finally {
    for (const storage of storages) {
      await storage.close();
      await dropTables(db, storage);
    }
    await pool.end();
    await db.end();
  }
}
