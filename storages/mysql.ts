/**
 * `MysqlStorage`: sessions in a MySQL or MariaDB table, through
 * [mysql2](https://sidorares.github.io/node-mysql2/docs) (`npm:mysql2`,
 * promise API).
 *
 * Each session is one row: the key as `VARBINARY(767)` (primary key,
 * compared byte for byte, so keys differing only in case, accents or
 * trailing spaces stay apart), the exact JSON text in a `LONGTEXT utf8mb4`
 * column, a version for conditional writes and an optional expiry. The
 * table is created on first use, the lease table when leases are first
 * used. Every identifier is escaped and every value is a parameter of a
 * prepared statement. A read is one `SELECT`; expired rows are never
 * returned and are deleted in small batches while the storage is written to.
 * See docs/mysql.md for the key layout, limits and MariaDB/MySQL notes.
 *
 * @example A bot with sessions in MySQL or MariaDB
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { session, type SessionFlavor } from "@sessionkit/grammy";
 * import { MysqlStorage } from "@sessionkit/grammy/mysql";
 *
 * type MyContext = Context & SessionFlavor<{ count: number }>;
 *
 * const storage = MysqlStorage.connect<{ count: number }>(
 *   "mysql://root@127.0.0.1:3306/test",
 *   { table: "sessions", ttl: 30 * 24 * 60 * 60 * 1000 },
 * );
 * const bot = new Bot<MyContext>("token");
 * bot.use(session({ initial: () => ({ count: 0 }), storage }));
 * bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.count}`));
 * ```
 *
 * @module
 */

import mysqlModule from "npm:mysql2@^3/promise";
import { AsyncDriverStorage } from "./shared/async_driver_storage.ts";
import type { MysqlQueryable } from "./mysql/client.ts";
import { guardedPool, type Pool, SILENT_TIMEOUTS } from "./mysql/owned_pool.ts";
import { MysqlDriver } from "./mysql/driver.ts";
import { checkPurgeLimit, PURGE_BATCH } from "./shared/purging.ts";
import { timed, withTimeout } from "./shared/timeout.ts";
import { type MysqlStorageOptions, resolveOptions } from "./mysql/options.ts";
import { createTableSql } from "./mysql/sql.ts";

export type { MysqlParameter, MysqlQueryable, MysqlStatement } from "./mysql/client.ts";
export type { MysqlStorageOptions } from "./mysql/options.ts";
export type { MaybePromise, StorageAdapter } from "../src/storage.ts";
export type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";
export { AsyncDriverStorage } from "./shared/async_driver_storage.ts";
export { DriverStorage } from "./shared/driver_storage.ts";

/**
 * The one function used from `npm:mysql2`, typed here so that the published
 * module's types do not depend on mysql2's (and Node's) declarations.
 */
const mysql = mysqlModule as unknown as {
  createPool(config: { uri: string; connectTimeout?: number }): Pool;
};

/**
 * Stores sessions in a MySQL (5.7+, 8.x) or MariaDB (10.3+) table: a
 * {@link AsyncDriverStorage} over mysql2, so it works with `session()`,
 * `lazySession()` and multi sessions of sessionkit and grammY alike, with
 * conditional writes and per-key leases for running several bot processes
 * on one database.
 *
 * Pass a pool of `mysql2/promise` (preferably a pool: every statement stands
 * alone, with autocommit on, as mysql2's pools have it), or let
 * {@link MysqlStorage.connect} open one from a URL. Every method answers
 * with a promise; a bad key or value rejects it before anything is sent. An
 * operation that takes longer than `timeout` ms (default 10 000) fails with
 * a `SessionError` naming it.
 *
 * @example With your own pool
 * ```ts
 * import mysql from "npm:mysql2@^3/promise";
 * import { MysqlStorage } from "@sessionkit/grammy/mysql";
 *
 * const pool = mysql.createPool("mysql://root@127.0.0.1:3306/test");
 * const storage = new MysqlStorage<{ count: number }>(pool, { table: "bot_sessions" });
 * await storage.write("42", { count: 1 });
 * console.log(await storage.read("42")); // { count: 1 }
 * const { value, version } = await storage.readVersioned("42");
 * await storage.writeIfVersion("42", { count: (value?.count ?? 0) + 1 }, version);
 * await pool.end();
 * ```
 */
export class MysqlStorage<T> extends AsyncDriverStorage<T> {
  /** The session table name, unescaped. */
  readonly table: string;
  /** The lease table name, unescaped: `<table>_leases`, shortened with a hash if needed. */
  readonly leaseTable: string;
  /** The time to live in milliseconds, or `undefined` for none. */
  readonly ttl: number | undefined;
  /** How long one operation may take, in milliseconds; `Infinity` for no bound. */
  readonly timeout: number;
  readonly #driver: MysqlDriver;

  /**
   * Creates a storage on a pool you manage; {@link MysqlStorage.close} leaves
   * it open. Nothing is sent until the first operation.
   *
   * @example
   * ```ts
   * import mysql from "npm:mysql2@^3/promise";
   * import { MysqlStorage } from "@sessionkit/grammy/mysql";
   *
   * const pool = mysql.createPool({ uri: "mysql://root@127.0.0.1:3306/test", connectionLimit: 20 });
   * const storage = new MysqlStorage<{ step: string }>(pool, { ttl: 3_600_000 });
   * ```
   *
   * @param db A `Pool` (or `Connection`) of `mysql2/promise`: anything with
   *   its `execute` and `query`.
   * @param options Table, TTL, whether to create the tables, and the timeout.
   */
  constructor(db: MysqlQueryable, options?: MysqlStorageOptions) {
    const resolved = resolveOptions(options);
    if (typeof db?.execute !== "function" || typeof db.query !== "function") {
      throw new TypeError(
        "MysqlStorage: the first argument must be a mysql2 pool or connection of the promise " +
          "API (import mysql from 'npm:mysql2@^3/promise'; mysql.createPool(url)). To connect " +
          "with a URL, use MysqlStorage.connect(url) instead.",
      );
    }
    if (typeof (db as { promise?: unknown }).promise === "function") {
      throw new TypeError(
        "MysqlStorage: this is a pool or connection of mysql2's callback API. Pass " +
          "pool.promise() instead, or create it from 'npm:mysql2@^3/promise'.",
      );
    }
    const driver = new MysqlDriver(db, resolved);
    super(withTimeout(driver, resolved.timeout));
    this.#driver = driver;
    this.table = resolved.table;
    this.leaseTable = resolved.leaseTable;
    this.ttl = resolved.ttl;
    this.timeout = resolved.timeout;
  }

  /**
   * Opens a mysql2 pool for `url` and returns a storage that owns it:
   * {@link MysqlStorage.close} ends the pool. Pool options go in the URL's
   * query (`?connectionLimit=20`). Invalid options are refused before
   * anything is opened.
   *
   * @example
   * ```ts
   * import { MysqlStorage } from "@sessionkit/grammy/mysql";
   *
   * const storage = MysqlStorage.connect<{ step: string }>(
   *   Deno.env.get("MYSQL_URL") ?? "mysql://root@127.0.0.1:3306/test",
   *   { table: "wizard_sessions", ttl: 3_600_000 },
   * );
   * await storage.write("42", { step: "start" });
   * await storage.close();
   * ```
   *
   * @param url A URL like `mysql://user:password@host:3306/database`.
   * @param options The same options as the constructor.
   * @returns A storage owning its pool.
   */
  static connect<T>(url: string, options?: MysqlStorageOptions): MysqlStorage<T> {
    const { timeout } = resolveOptions(options);
    // Connecting is bounded by the timeout too (mysql2's default: 10 s).
    const pool = guardedPool(
      mysql.createPool({
        uri: url,
        connectTimeout: timeout === Infinity ? undefined : timeout * SILENT_TIMEOUTS,
      }),
      timeout,
    );
    const storage = new MysqlStorage<T>(pool, options);
    storage.#driver.own(() => pool.end());
    return storage;
  }

  /**
   * The DDL of the session and lease tables for `options`, for running by
   * hand (for example in a migration) before using `createTable: false`.
   *
   * @example
   * ```ts
   * import { MysqlStorage } from "@sessionkit/grammy/mysql";
   *
   * console.log(MysqlStorage.createTableSql({ table: "bot_sessions" }));
   * ```
   *
   * @param options The table; other options are ignored.
   * @returns Two `CREATE TABLE IF NOT EXISTS` statements, each ending with `;`.
   */
  static createTableSql(options: Pick<MysqlStorageOptions, "table"> = {}): string {
    const { table, leaseTable } = resolveOptions({ table: options.table });
    const ddl = createTableSql(table, leaseTable);
    return `${ddl.sessions};\n\n${ddl.leases};\n`;
  }

  /**
   * Deletes up to `limit` expired sessions, oldest first, and returns how
   * many went. Writes call this by themselves (on the first write and every
   * hundredth after it); call it from a scheduled job if you want expired
   * rows gone sooner. Expired sessions are never returned either way.
   *
   * @example
   * ```ts
   * import { MysqlStorage } from "@sessionkit/grammy/mysql";
   *
   * const storage = MysqlStorage.connect("mysql://root@127.0.0.1:3306/test", { ttl: 60_000 });
   * while (await storage.purgeExpired(1000) === 1000) { }
   * await storage.close();
   * ```
   *
   * @param limit The most rows to delete in this call. Default 100.
   * @returns The number of rows deleted.
   */
  async purgeExpired(limit: number = PURGE_BATCH): Promise<number> {
    checkPurgeLimit("MysqlStorage", limit);
    return await timed(
      "MysqlStorage",
      this.timeout,
      { what: "purging expired sessions", outcome: "Some of them may still be deleted." },
      this.#driver.purge(limit),
    );
  }
}
