/**
 * What the SQLite storage needs from a database handle, typed structurally so
 * that no driver is imported: `node:sqlite`'s `DatabaseSync` (Deno 2, Node
 * 22.5+) and `better-sqlite3`'s `Database` both fit as they are.
 *
 * The storage uses only what the two agree on:
 * - `?` placeholders with positional arguments (no named parameters, whose
 *   prefixes the two treat differently), bound to strings, numbers and
 *   `null` only (both refuse booleans and `undefined`);
 * - `run()`'s `changes`, which `node:sqlite` may report as a `bigint`;
 * - rows as objects keyed by column name (`node:sqlite` gives them a null
 *   prototype), with integers read as numbers or, when the handle is set to
 *   read big integers, as `bigint`s;
 * - `exec()` for DDL and pragmas.
 *
 * @module
 */

/**
 * A value bound to a `?` placeholder.
 *
 * @example
 * ```ts
 * import type { SqliteValue } from "@sessionkit/grammy/sqlite";
 *
 * const params: SqliteValue[] = ["42", '{"count":1}', null];
 * ```
 */
export type SqliteValue = string | number | null;

/**
 * What `run()` reports: how many rows the statement changed.
 *
 * @example
 * ```ts
 * import type { SqliteRunResult } from "@sessionkit/grammy/sqlite";
 *
 * const result: SqliteRunResult = { changes: 1 };
 * ```
 */
export interface SqliteRunResult {
  /** Rows inserted, updated or deleted (a `bigint` with `node:sqlite`'s `readBigInts`). */
  changes: number | bigint;
}

/**
 * A prepared statement, as `prepare` returns it.
 *
 * @example
 * ```ts
 * import { DatabaseSync } from "node:sqlite";
 * import type { SqliteStatement } from "@sessionkit/grammy/sqlite";
 *
 * const statement: SqliteStatement = new DatabaseSync(":memory:").prepare("SELECT ? AS x");
 * console.log(statement.get(1)); // { x: 1 }
 * ```
 */
export interface SqliteStatement {
  /**
   * Runs the statement with positional parameters. The storage passes only
   * {@link SqliteValue}s; the parameters are typed `unknown` because
   * `@types/better-sqlite3` types them per statement.
   */
  run(...params: unknown[]): SqliteRunResult;
  /** The first row, or `undefined`. */
  get(...params: unknown[]): unknown;
  /** All rows. */
  all(...params: unknown[]): unknown[];
}

/**
 * A synchronous SQLite handle: `new DatabaseSync(path)` from `node:sqlite`
 * or `new Database(path)` from `better-sqlite3`.
 *
 * @example
 * ```ts
 * import { DatabaseSync } from "node:sqlite";
 * import type { SqliteDatabase } from "@sessionkit/grammy/sqlite";
 *
 * const db: SqliteDatabase = new DatabaseSync("sessions.db");
 * ```
 */
export interface SqliteDatabase {
  /** Compiles one SQL statement. */
  prepare(sql: string): SqliteStatement;
  /** Runs SQL text that returns nothing (DDL, pragmas). */
  exec(sql: string): unknown;
}

/** A row as the storage reads it. */
export type Row = Record<string, unknown>;

/** The rows changed, as a number whatever the handle reports. */
export function changes(result: SqliteRunResult): number {
  return Number(result.changes);
}

/** An integer column as a number (`bigint` with big-integer reading), or `null`. */
export function integer(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

/**
 * Makes a statement return rows as objects when the handle was opened to
 * return arrays (`node:sqlite`'s `returnArrays`); `better-sqlite3` returns
 * objects unless a statement is switched to raw mode, which this storage
 * never does.
 */
export function withObjectRows(statement: SqliteStatement): SqliteStatement {
  const s = statement as SqliteStatement & { setReturnArrays?: (on: boolean) => void };
  if (typeof s.setReturnArrays === "function") s.setReturnArrays(false);
  return statement;
}

/** Whether `err` is SQLite's "database is locked" (`SQLITE_BUSY`), from either driver. */
export function isBusy(err: unknown): boolean {
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown } | null;
  if (e === null || typeof e !== "object") return false;
  if (typeof e.code === "string" && e.code.startsWith("SQLITE_BUSY")) return true; // better-sqlite3
  if (typeof e.errcode === "number" && (e.errcode & 0xff) === 5) return true; // node:sqlite
  return typeof e.message === "string" && /database (table )?is locked/.test(e.message);
}

/** Whether `err` says a table is missing (dropped behind the storage's back). */
export function isNoTable(err: unknown): boolean {
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === "string" && message.includes("no such table");
}
