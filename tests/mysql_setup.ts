/**
 * Shared setup of the MySQL/MariaDB tests: the server at MYSQL_URL (default
 * mysql://root@127.0.0.1:3306/test), a unique table prefix per run, an admin
 * pool for looking at what is really stored, and a loud skip (locally) or a
 * failure (CI=true) when the server is unreachable.
 */
import mysql from "npm:mysql2@^3/promise";
import type {
  MysqlParameter,
  MysqlQueryable,
  MysqlStatement,
  MysqlStorage,
} from "../storages/mysql.ts";

export { mysql };

export const MYSQL_URL = Deno.env.get("MYSQL_URL") ?? "mysql://root@127.0.0.1:3306/test";
const IN_CI = Deno.env.get("CI") === "true";

/** Unique per test run; every table the tests make starts with it. */
export const RUN = `sk_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 7)}`;

/** An admin pool of the promise API. */
export type Admin = ReturnType<typeof mysql.createPool>;

async function probe(): Promise<string | undefined> {
  let conn: Awaited<ReturnType<typeof mysql.createConnection>> | undefined;
  try {
    conn = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: 3000 });
    await conn.query("SELECT 1");
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await conn?.end().catch(() => {});
  }
}

const problem = await probe();
if (problem !== undefined && !IN_CI) {
  console.error(
    `\n${"!".repeat(78)}\n!!! SKIPPING the MySQL tests: no server at ${MYSQL_URL} (${problem}).\n` +
      `!!! Start MariaDB/MySQL or set MYSQL_URL. With CI=true they fail instead.\n` +
      `${"!".repeat(78)}\n`,
  );
}

/** Whether the server answered the probe. */
export const mysqlAvailable: boolean = problem === undefined;

/** Calls `register` if the server is there; otherwise skips loudly, or fails on CI. */
export function whenReachable(name: string, register: () => void): void {
  if (problem === undefined) {
    register();
  } else if (IN_CI) {
    Deno.test(name, () => {
      throw new Error(`MySQL at ${MYSQL_URL} is unreachable (${problem}); CI needs it.`);
    });
  } else {
    Deno.test({ name, ignore: true, fn: () => {} });
  }
}

/** Registers a MySQL test: skipped loudly locally without a server, failing on CI. */
export function mysqlTest(name: string, fn: (t: Deno.TestContext) => Promise<void>): void {
  whenReachable(name, () => Deno.test({ name, fn }));
}

/** Opens an admin pool. */
export function admin(): Admin {
  return mysql.createPool({ uri: MYSQL_URL, connectionLimit: 2 });
}

/** Escapes an identifier the way the storage does. */
export function id(name: string): string {
  return "`" + name.replaceAll("`", "``") + "`";
}

/** Drops the session and lease tables of `storage` (or of these names). */
export async function dropTables(
  db: Admin,
  storage: Pick<MysqlStorage<unknown>, "table" | "leaseTable">,
): Promise<void> {
  await db.query(`DROP TABLE IF EXISTS ${id(storage.table)}, ${id(storage.leaseTable)}`);
}

/** Whether a table exists in the current database, by exact name. */
export async function tableExists(db: Admin, table: string): Promise<boolean> {
  const [rows] = await db.query(
    "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
    [table],
  );
  return (rows as unknown[]).length === 1;
}

/** The server's max_allowed_packet as the storage sees it. */
export async function maxAllowedPacket(db: Admin): Promise<number> {
  const [rows] = await db.query(
    "SELECT LEAST(@@SESSION.max_allowed_packet, @@GLOBAL.max_allowed_packet) AS p",
  );
  return Number((rows as { p: number }[])[0].p);
}

/** Collects an async iterable. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of it) out.push(item);
  return out;
}

/** A pass-through handle that records every statement sent to the real server. */
export class Recorder implements MysqlQueryable {
  readonly statements: { sql: string; values: MysqlParameter[] }[] = [];
  constructor(readonly inner: MysqlQueryable) {}
  execute(statement: MysqlStatement, values: MysqlParameter[]): Promise<unknown> {
    this.statements.push({ sql: statement.sql, values });
    return this.inner.execute(statement, values);
  }
  query(statement: MysqlStatement): Promise<unknown> {
    this.statements.push({ sql: statement.sql, values: [] });
    return this.inner.query(statement);
  }
  /** The statements sent since the last call, and forgets them. */
  take(): string[] {
    return this.statements.splice(0).map((s) => s.sql);
  }
}

/**
 * Tracks what a test opens: storages over one shared pool, each table they
 * use dropped and each pool ended by `cleanup()`.
 */
export class MysqlFixture {
  readonly admin: Admin = admin();
  readonly pool: Admin = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 5 });
  readonly #storages: MysqlStorage<unknown>[] = [];
  #n = 0;

  /** A fresh table name of this run. */
  table(tag = "t"): string {
    return `${RUN}_${tag}_${++this.#n}`;
  }

  /** Remembers `storage` for cleanup and returns it. */
  track<S extends Pick<MysqlStorage<unknown>, "table" | "leaseTable" | "close">>(storage: S): S {
    this.#storages.push(storage as unknown as MysqlStorage<unknown>);
    return storage;
  }

  /** Closes the storages, drops their tables and ends the pools. */
  async cleanup(): Promise<void> {
    try {
      for (const storage of this.#storages) {
        await storage.close();
        await dropTables(this.admin, storage);
      }
    } finally {
      await this.pool.end();
      await this.admin.end();
    }
  }
}
