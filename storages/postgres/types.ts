/**
 * The public types of the PostgreSQL storage: the database handle it needs
 * and its options.
 *
 * @module
 */

/**
 * What the storage needs from a database handle: a `query` method taking SQL
 * text and bound parameters. A `Pool` and a `Client` from `npm:pg` both fit.
 *
 * @example
 * ```ts
 * import pg from "npm:pg@^8";
 * import type { PostgresQueryable } from "@sessionkit/grammy/postgres";
 *
 * const db: PostgresQueryable = new pg.Pool({ connectionString: "postgres://localhost/test" });
 * ```
 */
export interface PostgresQueryable {
  /** Runs `text` with the parameters `values` (`$1`, `$2`, ...). */
  query(text: string, values?: unknown[]): Promise<PostgresQueryResult>;
}

/**
 * The part of a query result the storage reads.
 *
 * @example
 * ```ts
 * import type { PostgresQueryResult } from "@sessionkit/grammy/postgres";
 *
 * const result: PostgresQueryResult = { rows: [{ key: "42" }], rowCount: 1 };
 * ```
 */
export interface PostgresQueryResult {
  /** The rows, one object per row keyed by column name. */
  rows: Record<string, unknown>[];
  /** The number of rows returned or changed. */
  rowCount: number | null;
}

/**
 * The column type of the session value: `json` (the default: the exact JSON
 * text as written, any string included) or `jsonb` (PostgreSQL's binary
 * form: normalized key order, and no `\u0000` or lone surrogates in
 * strings).
 *
 * @example
 * ```ts
 * import type { ValueType } from "@sessionkit/grammy/postgres";
 *
 * const type: ValueType = "json";
 * ```
 */
export type ValueType = "json" | "jsonb";

/**
 * Options of `PostgresStorage`.
 *
 * @example
 * ```ts
 * import type { PostgresStorageOptions } from "@sessionkit/grammy/postgres";
 *
 * const options: PostgresStorageOptions = { schema: "bot", table: "sessions", ttl: 86_400_000 };
 * ```
 */
export interface PostgresStorageOptions {
  /**
   * The table name, taken literally: `"Sessions"` and `"sessions"` are two
   * tables, and a dot is part of the name (use `schema` for the schema).
   * At most 63 bytes. Default `sessions`.
   */
  table?: string;
  /**
   * The schema holding the table; it must exist. Default: the first schema
   * on the connection's `search_path` (usually `public`).
   */
  schema?: string;
  /**
   * Time to live in milliseconds. A session lives at least this long after
   * its last read or write, and is gone at most 1.5 times this long after
   * it. Default: never; a storage without a TTL also clears the expiry of
   * every session it reads or writes.
   */
  ttl?: number;
  /**
   * Whether to create the tables and the index when they are missing (the
   * lease table only once a lease is used). Set it to `false` for a database
   * user without CREATE rights and create them by hand with
   * `PostgresStorage.createTableSql`. Default `true`.
   */
  createTable?: boolean;
  /**
   * The column type of the session value when the storage creates the
   * table. `"json"` (the default) keeps the exact JSON text, byte for byte,
   * and still answers SQL such as `value->>'name'`. `"jsonb"` is stored
   * normalized: object keys come back sorted (shorter first), and strings
   * containing `\u0000` or a lone surrogate cannot be stored (such a session
   * is refused with a `SessionValueError` before anything is written). An
   * existing table keeps the type it has.
   */
  valueType?: ValueType;
  /**
   * How long one operation (a read, a write, a lease call, a page of a
   * listing, a purge) may take, in milliseconds, before it fails with a
   * `SessionError` that names it; the update using it then fails instead of
   * hanging on a silent server or a row locked by another session. Giving
   * up does not cancel the statement: the server may still run it, so a
   * write given up this way may still land later (set `statement_timeout`
   * on your pool or role to have the server cancel it too). Default 10 000;
   * `Infinity` for no bound.
   */
  timeout?: number;
}
