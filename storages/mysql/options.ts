/**
 * The options of the MySQL/MariaDB storage and their checks.
 *
 * @module
 */

import { checkFlag, checkOptionNames, checkTimeout, checkTtl } from "../shared/options.ts";
import { checkTableName, leaseTableName } from "./names.ts";
import type { DriverOptions } from "./driver.ts";

/**
 * Options of `MysqlStorage`.
 *
 * @example
 * ```ts
 * import type { MysqlStorageOptions } from "@sessionkit/grammy/mysql";
 *
 * const options: MysqlStorageOptions = { table: "bot_sessions", ttl: 7 * 86_400_000 };
 * ```
 */
export interface MysqlStorageOptions {
  /**
   * The session table, in the connection's database, taken literally
   * (escaped with backticks): at most 64 characters of the Basic
   * Multilingual Plane, without a trailing space. Whether `Sessions` and
   * `sessions` are two tables depends on the server's
   * `lower_case_table_names` (they are on Linux, not on Windows or macOS).
   * The lease table is `<table>_leases`. Default `sessions`.
   */
  table?: string;
  /**
   * Time to live in milliseconds: a session not read or written for this
   * long (at most 1.5 times as long) is gone. Default: never.
   */
  ttl?: number;
  /**
   * Whether to create the tables on first use (`CREATE TABLE IF NOT
   * EXISTS`; the lease table when leases are first used). Set it to `false`
   * for a database user without CREATE rights and create them with the SQL
   * of `MysqlStorage.createTableSql()`. Default `true`.
   */
  createTable?: boolean;
  /**
   * How long one operation (a read, a write, a lease call, a page of a
   * listing, a purge) may take, in milliseconds, before it fails with a
   * `SessionError` that names it; the update using it then fails instead of
   * hanging on a silent server or a row locked by another connection.
   * Giving up does not cancel the statement: the server may still run it,
   * so a write given up this way may still land later. Default 10 000;
   * `Infinity` for no bound.
   */
  timeout?: number;
}

/** The options with their defaults, checked: the driver's, and the timeout. */
export interface ResolvedOptions extends DriverOptions {
  /** The bound of one operation in ms, `Infinity` for none. */
  timeout: number;
}

/**
 * Checks `options` and fills in the defaults; throws a `RangeError` on a bad
 * table name, TTL or timeout.
 *
 * @example
 * ```ts
 * resolveOptions({ table: "bot" }).leaseTable; // "bot_leases"
 * ```
 */
export function resolveOptions(options: MysqlStorageOptions = {}): ResolvedOptions {
  checkOptionNames("MysqlStorage", options, ["table", "ttl", "createTable", "timeout"]);
  const table = checkTableName(options.table ?? "sessions");
  const ttl = checkTtl("MysqlStorage", options.ttl);
  return {
    table,
    leaseTable: leaseTableName(table),
    ttl,
    createTable: checkFlag("MysqlStorage", "createTable", options.createTable) ?? true,
    timeout: checkTimeout("MysqlStorage", options.timeout),
  };
}
