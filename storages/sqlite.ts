/**
 * `SqliteStorage`: sessions in a table of a SQLite database file, through
 * the synchronous SQLite handle you open: `DatabaseSync` from `node:sqlite`
 * (built into Deno 2 and Node 22.5+) or `Database` from `better-sqlite3`
 * (Node 20+). This module imports no driver.
 *
 * One row per session with its exact JSON text, a version and an optional
 * expiry; the table is created on first use. Sessions can expire after a
 * TTL; expired rows are never returned and are deleted in small batches
 * while the storage is written to, without timers. Listings page through
 * the table by key. Conditional writes and leases make several bot
 * processes on one database file safe (see docs/sqlite.md for WAL mode).
 *
 * @example A bot with sessions in a SQLite file (Deno, or Node 22.5+)
 * ```ts
 * import { DatabaseSync } from "node:sqlite";
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { session, type SessionFlavor } from "@sessionkit/grammy";
 * import { SqliteStorage } from "@sessionkit/grammy/sqlite";
 *
 * type MyContext = Context & SessionFlavor<{ count: number }>;
 *
 * const db = new DatabaseSync("sessions.db");
 * db.exec("PRAGMA journal_mode = WAL");
 * const storage = new SqliteStorage<{ count: number }>(db, { ttl: 30 * 24 * 60 * 60 * 1000 });
 * const bot = new Bot<MyContext>("token");
 * bot.use(session({ initial: () => ({ count: 0 }), storage }));
 * bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.count}`));
 * ```
 *
 * @module
 */

import { checkPurgeLimit } from "./shared/purging.ts";
import { checkOptionNames, checkTtl } from "./shared/options.ts";
import { DriverStorage } from "./shared/driver_storage.ts";
import type { SqliteDatabase } from "./sqlite/database.ts";
import { SqliteDriver } from "./sqlite/driver.ts";
import { checkTableName } from "./sqlite/sql.ts";

export type {
  SqliteDatabase,
  SqliteRunResult,
  SqliteStatement,
  SqliteValue,
} from "./sqlite/database.ts";
export type { DriverStorage } from "./shared/driver_storage.ts";
export type { MaybePromise, StorageAdapter } from "../src/storage.ts";
export type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";

/**
 * Options of {@link SqliteStorage}.
 *
 * @example
 * ```ts
 * import type { SqliteStorageOptions } from "@sessionkit/grammy/sqlite";
 *
 * const options: SqliteStorageOptions = { table: "bot_sessions", ttl: 86_400_000 };
 * ```
 */
export interface SqliteStorageOptions {
  /**
   * The session table, created if missing. Any name works (it is quoted),
   * except one starting with `sqlite_`. SQLite compares table names without
   * regard to ASCII case: `Sessions` and `sessions` are one table. The
   * leases live in `<table>_leases`. Default `sessions`.
   */
  table?: string;
  /**
   * Time to live in milliseconds: a session lives at least this long after
   * its last read or write, and at most 1.5 times as long (the expiry is
   * written 1.5 TTLs ahead and renewed by a read once less than one TTL is
   * left, so most reads write nothing). Default: never; a storage without a
   * TTL clears the expiry of every session it reads or writes.
   */
  ttl?: number;
  /**
   * How long a statement waits for another connection's write lock before
   * it fails, in ms (`PRAGMA busy_timeout`, set on the handle). Default:
   * the handle's own timeout if it has one (`better-sqlite3` and Deno's
   * `node:sqlite` set 5000), otherwise 5000.
   */
  busyTimeout?: number;
}

/**
 * Stores sessions in a SQLite table through a handle you opened and keep
 * open (closing the storage leaves it open).
 *
 * The table: `key TEXT PRIMARY KEY`, `value TEXT` (the exact JSON text),
 * `version TEXT` (96 random bits drawn by each write) and
 * `expires_at INTEGER` (ms since the epoch, or `NULL`). Every operation is
 * one statement (a read that renews or clears an expiry, two), so each is
 * atomic without a transaction.
 *
 * SQLite calls are synchronous: the storage answers `read`, `write`,
 * `delete` and `has` without a promise, and a statement waiting for
 * another process's lock blocks the event loop for up to the busy timeout.
 * Listings are async iterables fetching a page at a time.
 *
 * @example With `node:sqlite` (Deno 2, Node 22.5+)
 * ```ts
 * import { DatabaseSync } from "node:sqlite";
 * import { SqliteStorage } from "@sessionkit/grammy/sqlite";
 *
 * const db = new DatabaseSync("sessions.db");
 * const storage = new SqliteStorage<{ count: number }>(db);
 * await storage.write("42", { count: 1 });
 * console.log(await storage.read("42")); // { count: 1 }
 * db.close();
 * ```
 *
 * @example With `better-sqlite3` (Node 20+)
 * ```ts ignore
 * import Database from "better-sqlite3";
 * import { SqliteStorage } from "@sessionkit/grammy/sqlite";
 *
 * const db = new Database("sessions.db");
 * db.pragma("journal_mode = WAL");
 * const storage = new SqliteStorage<{ count: number }>(db, { table: "bot_sessions" });
 * ```
 */
export class SqliteStorage<T> extends DriverStorage<T> {
  /** The session table name, unquoted. */
  readonly table: string;
  /** The lease table name, unquoted: `<table>_leases`. */
  readonly leaseTable: string;
  /** The time to live in milliseconds, or `undefined` for none. */
  readonly ttl: number | undefined;
  readonly #driver: SqliteDriver;

  /**
   * Creates a storage on an open SQLite handle. Nothing is run until the
   * first operation, which sets the busy timeout and creates the tables.
   *
   * @param db `new DatabaseSync(path)` from `node:sqlite`, or
   *   `new Database(path)` from `better-sqlite3`.
   * @param options Table, TTL and busy timeout.
   */
  constructor(db: SqliteDatabase, options: SqliteStorageOptions = {}) {
    if (typeof db?.prepare !== "function" || typeof db?.exec !== "function") {
      throw new TypeError(
        "SqliteStorage: the first argument must be an open SQLite database: new " +
          'DatabaseSync(path) from "node:sqlite", or new Database(path) from "better-sqlite3".',
      );
    }
    checkOptionNames("SqliteStorage", options, ["table", "ttl", "busyTimeout"]);
    const table = checkTableName(options.table ?? "sessions");
    const ttl = checkTtl("SqliteStorage", options.ttl);
    const busyTimeout = options.busyTimeout;
    if (
      busyTimeout !== undefined &&
      !(Number.isInteger(busyTimeout) && busyTimeout >= 0 && busyTimeout <= 2 ** 31 - 1)
    ) {
      throw new RangeError(
        `SqliteStorage: busyTimeout must be a whole number of milliseconds from 0 to ` +
          `2147483647, got ${busyTimeout}.`,
      );
    }
    const leaseTable = `${table}_leases`;
    const driver = new SqliteDriver(db, {
      table,
      leaseTable,
      ttl,
      busyTimeout,
    });
    super(driver);
    this.#driver = driver;
    this.table = table;
    this.leaseTable = leaseTable;
    this.ttl = ttl;
  }

  /**
   * Deletes up to `limit` expired sessions (and expired leases), oldest
   * index order first, and returns how many sessions it deleted. Writes
   * already purge a small batch now and then; call this from a job of your
   * own to clean a large backlog.
   *
   * @example
   * ```ts
   * import { DatabaseSync } from "node:sqlite";
   * import { SqliteStorage } from "@sessionkit/grammy/sqlite";
   *
   * const storage = new SqliteStorage(new DatabaseSync(":memory:"), { ttl: 60_000 });
   * while (storage.purgeExpired(1000) === 1000) { }
   * ```
   *
   * @param limit The most sessions to delete in this call. Default 1000.
   * @returns The number of sessions deleted.
   */
  purgeExpired(limit: number = 1000): number {
    checkPurgeLimit("SqliteStorage", limit);
    return this.#driver.purge(limit);
  }
}
