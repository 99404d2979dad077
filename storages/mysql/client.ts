/**
 * What the MySQL/MariaDB storage needs from a database handle, and how it
 * reads results and errors of `npm:mysql2`.
 *
 * @module
 */

/**
 * A statement as the storage sends it. `rowsAsArray` is always set, so rows
 * come back as arrays whatever the pool's own options say.
 */
export interface MysqlStatement {
  /** SQL text with `?` placeholders. */
  sql: string;
  /** Rows as arrays of column values, in select-list order. */
  rowsAsArray: boolean;
}

/**
 * A statement parameter: text, or bytes (a `Buffer` is a `Uint8Array`).
 */
export type MysqlParameter = string | Uint8Array;

/**
 * A database handle: a `Pool` (or a single `Connection`) of `npm:mysql2`'s
 * promise API (`mysql2/promise`), or anything with the same `execute` and
 * `query`. Both resolve to `[result, fields]` as mysql2's do.
 *
 * @example
 * ```ts
 * import mysql from "npm:mysql2@^3/promise";
 * import type { MysqlQueryable } from "@sessionkit/grammy/mysql";
 *
 * const pool: MysqlQueryable = mysql.createPool("mysql://root@127.0.0.1:3306/test");
 * ```
 */
export interface MysqlQueryable {
  /** Runs a server-side prepared statement with the parameters `values`. */
  execute(statement: MysqlStatement, values: MysqlParameter[]): Promise<unknown>;
  /** Runs a statement without parameters (the storage's DDL). */
  query(statement: MysqlStatement): Promise<unknown>;
}

/** Error numbers the storage acts on. */
export const ER = {
  /** A row with this primary key exists. */
  DUP_ENTRY: 1062,
  /** The packet exceeded the server's `max_allowed_packet`. */
  NET_PACKET_TOO_LARGE: 1153,
  /** The table does not exist. */
  NO_SUCH_TABLE: 1146,
  /** A lock wait timed out; the statement was rolled back. */
  LOCK_WAIT_TIMEOUT: 1205,
  /** InnoDB chose this statement as a deadlock victim and rolled it back. */
  LOCK_DEADLOCK: 1213,
} as const;

/**
 * The server's error number of `err`, if it is a server error.
 *
 * @example
 * ```ts
 * errnoOf({ errno: 1062, code: "ER_DUP_ENTRY" }); // 1062
 * ```
 */
export function errnoOf(err: unknown): number | undefined {
  const errno = (err as { errno?: unknown } | null)?.errno;
  return typeof errno === "number" ? errno : undefined;
}

/**
 * The rows of a `SELECT` result (`[rows, fields]`), each an array.
 *
 * @example
 * ```ts
 * rowsOf([[["a", 1]], []]); // [["a", 1]]
 * ```
 */
export function rowsOf(result: unknown): unknown[][] {
  const rows = Array.isArray(result) ? result[0] : undefined;
  if (!Array.isArray(rows)) {
    throw new TypeError(
      "MysqlStorage: the database handle did not answer a SELECT with rows. Pass a pool or " +
        "connection of mysql2's promise API (import from npm:mysql2/promise).",
    );
  }
  return rows as unknown[][];
}

/**
 * The affected-row count of a write result (`[ResultSetHeader, fields]`).
 *
 * @example
 * ```ts
 * affectedOf([{ affectedRows: 1 }, undefined]); // 1
 * ```
 */
export function affectedOf(result: unknown): number {
  const header = Array.isArray(result) ? result[0] : undefined;
  const n = (header as { affectedRows?: unknown } | undefined)?.affectedRows;
  if (typeof n !== "number") {
    throw new TypeError(
      "MysqlStorage: the database handle did not report affected rows. Pass a pool or " +
        "connection of mysql2's promise API (import from npm:mysql2/promise).",
    );
  }
  return n;
}

// `ignoreBOM`: a leading U+FEFF is part of a key or value, not a byte order
// mark to drop.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strict = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true });

/**
 * A binary column (`VARBINARY`, `CAST(... AS BINARY)`) as text. Bytes that
 * are not UTF-8 become U+FFFD; a leading U+FEFF is kept.
 *
 * @example
 * ```ts
 * textOf(new TextEncoder().encode("ключ")); // "ключ"
 * ```
 */
export function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return decoder.decode(value);
  throw new TypeError(`MysqlStorage: expected a binary column, got ${typeof value}.`);
}

/**
 * The bytes of a binary column exactly as stored, decoded as UTF-8, or
 * `undefined` if they are not UTF-8 (so no key sessionkit wrote).
 *
 * @example
 * ```ts
 * exactTextOf(new Uint8Array([0xef, 0xbb, 0xbf, 0x61])); // "\uFEFFa"
 * exactTextOf(new Uint8Array([0xff])); // undefined
 * ```
 */
export function exactTextOf(value: Uint8Array): string | undefined {
  try {
    return strict.decode(value);
  } catch {
    return undefined;
  }
}

/**
 * A binary column as a `Uint8Array`.
 *
 * @example
 * ```ts
 * bytesOf(new Uint8Array([1])); // Uint8Array [1]
 * ```
 */
export function bytesOf(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string") return new TextEncoder().encode(value);
  throw new TypeError(`MysqlStorage: expected a binary column, got ${typeof value}.`);
}
