/**
 * `PostgresStorage`: sessions in a PostgreSQL table, through
 * [node-postgres](https://node-postgres.com) (`npm:pg`).
 *
 * The table is created on first use (`CREATE TABLE IF NOT EXISTS`, safe when
 * several processes start at once). Every identifier is escaped with the
 * driver's identifier escaping and every value is a bound parameter, so table
 * and schema names with any characters are safe. Sessions can expire after a
 * TTL; expired rows are never returned and are deleted in small batches while
 * the storage is written to, without timers. Listing pages through the table
 * by key. The storage also supports conditional writes and leases for running
 * several bot processes on one database.
 *
 * @example A bot with sessions in PostgreSQL
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { session, type SessionFlavor } from "@sessionkit/grammy";
 * import { PostgresStorage } from "@sessionkit/grammy/postgres";
 *
 * type MyContext = Context & SessionFlavor<{ count: number }>;
 *
 * const storage = PostgresStorage.connect<{ count: number }>(
 *   "postgres://postgres@127.0.0.1:5432/test",
 *   { table: "sessions", ttl: 30 * 24 * 60 * 60 * 1000 },
 * );
 * const bot = new Bot<MyContext>("token");
 * bot.use(session({ initial: () => ({ count: 0 }), storage }));
 * bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.count}`));
 * ```
 *
 * @module
 */

import pgModule from "npm:pg@^8";
import type { StorageAdapter } from "../src/storage.ts";
import type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";
import { deserializeSession, serializeSession } from "../src/serialization.ts";
import { SessionError, SessionValueError } from "../src/errors.ts";
import { checkIdentifier } from "./postgres/names.ts";
import { isVersion, newVersion } from "./postgres/versions.ts";
import {
  buildStatements,
  createTableSql,
  type Statements,
  type TableNames,
  tableNames,
  type ValueType,
} from "./postgres/sql.ts";

export type { ValueType } from "./postgres/sql.ts";
export type { MaybePromise, StorageAdapter } from "../src/storage.ts";
export type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";

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
 * Options of {@link PostgresStorage}.
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
   * Time to live in milliseconds. A session not written for this long, and
   * not read while less than half of it was left, is gone. Default: never.
   */
  ttl?: number;
  /**
   * Whether to create the tables and the index on first use. Set it to
   * `false` for a database user without CREATE rights and create them by
   * hand with {@link PostgresStorage.createTableSql}. Default `true`.
   */
  createTable?: boolean;
  /**
   * The column type of the session value. `"jsonb"` (the default) can be
   * queried and indexed in SQL, but PostgreSQL stores it normalized: object
   * keys come back sorted (shorter first), and strings containing `\u0000`
   * or an unpaired surrogate cannot be stored (such a session is refused
   * with a `SessionValueError` before anything is written). `"json"` keeps
   * the exact JSON text, byte for byte, including key order. Only used when
   * the table is created; it must match an existing table.
   */
  valueType?: ValueType;
}

/** A pool opened by {@link PostgresStorage.connect}. */
interface OwnedPool extends PostgresQueryable {
  on(event: "error", listener: (err: Error) => void): unknown;
  end(): Promise<void>;
}

/**
 * The two things used from `npm:pg`, typed here so that the published module
 * does not pull in `@types/pg` and `@types/node`.
 */
const pg = pgModule as unknown as {
  Pool: new (config: { connectionString: string }) => OwnedPool;
  escapeIdentifier(name: string): string;
};

/**
 * JSON text holding `\u0000` or a lone surrogate escape (JSON.stringify
 * escapes lone surrogates and writes pairs as they are), not preceded by an
 * escaping backslash.
 */
const JSONB_UNSAFE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/** Rows deleted per batch when expired sessions are purged. */
const PURGE_BATCH = 100;
/** A purge batch runs on the first write and then on every this many writes. */
const PURGE_EVERY = 100;
/** Rows fetched per page when listing keys. */
const KEY_PAGE = 500;
/** Rows fetched per page when listing values. */
const VALUE_PAGE = 50;

const NO_TABLE = "42P01";
const CREATE_RACE = new Set(["23505", "42P07", "42710"]);

/**
 * Stores sessions in a PostgreSQL table through `npm:pg`.
 *
 * Each session is one row: `key text` (primary key), `value` (`jsonb` or
 * `json`) holding the JSON text of the serialization contract, a `version`
 * (a random 63-bit number picked by each write), an optional `expires_at`
 * and `updated_at`. Reads are one `SELECT` and writes a single upsert, or one
 * conditional `INSERT`/`UPDATE` for conflict detection.
 *
 * With a `Pool`, a connection that breaks (a restarted server, a terminated
 * backend) fails only the operations running on it; the next operation gets
 * a fresh connection. A `Client` that breaks stays broken, so prefer a pool.
 * Give pools you create yourself an `error` listener
 * (`pool.on("error", ...)`): node-postgres emits one when an idle connection
 * breaks, and an unhandled `error` event ends the process. Pools opened by
 * {@link PostgresStorage.connect} have one.
 *
 * @example With your own pool
 * ```ts
 * import pg from "npm:pg@^8";
 * import { PostgresStorage } from "@sessionkit/grammy/postgres";
 *
 * const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * pool.on("error", (err) => console.error("idle PostgreSQL connection failed", err));
 * const storage = new PostgresStorage<{ count: number }>(pool, { table: "bot_sessions" });
 * await storage.write("42", { count: 1 });
 * console.log(await storage.read("42")); // { count: 1 }
 * await pool.end();
 * ```
 *
 * @example Letting the storage own the pool
 * ```ts
 * import { PostgresStorage } from "@sessionkit/grammy/postgres";
 *
 * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test", {
 *   ttl: 7 * 24 * 60 * 60 * 1000,
 * });
 * for await (const key of storage.readAllKeys()) console.log(key);
 * await storage.close();
 * ```
 */
export class PostgresStorage<T> implements StorageAdapter<T>, ConditionalStorage<T>, LeaseStorage {
  /** The schema name as given, or `undefined` for the search path. */
  readonly schema: string | undefined;
  /** The session table name, unescaped. */
  readonly table: string;
  /** The lease table name, unescaped: `<table>_leases`, shortened with a hash if needed. */
  readonly leaseTable: string;
  /** The time to live in milliseconds, or `undefined` for none. */
  readonly ttl: number | undefined;
  /** The column type of the value: `jsonb` (default) or `json`. */
  readonly valueType: ValueType;

  readonly #db: PostgresQueryable;
  #owned: OwnedPool | undefined;
  readonly #createTable: boolean;
  readonly #sql: Statements;
  readonly #names: TableNames;
  #ready: Promise<void> | undefined;
  #created = false;
  #writes = 0;
  #closed: Promise<void> | undefined;

  /**
   * Creates a storage on a `Pool` or `Client` you manage. Nothing is sent to
   * the database until the first operation.
   *
   * @param db A `pg.Pool` or a connected `pg.Client` (anything with `query`).
   * @param options Table, schema, TTL and whether to create the table.
   */
  constructor(db: PostgresQueryable, options: PostgresStorageOptions = {}) {
    if (typeof db?.query !== "function") {
      throw new TypeError(
        "PostgresStorage: the first argument must be a pg Pool or Client (something with a " +
          "query method). To connect with a URL, use PostgresStorage.connect(url) instead.",
      );
    }
    this.#db = db;
    this.#owned = undefined;
    this.table = checkIdentifier("table", options.table ?? "sessions");
    this.schema = options.schema === undefined
      ? undefined
      : checkIdentifier("schema", options.schema);
    const ttl = options.ttl;
    if (ttl !== undefined && !(typeof ttl === "number" && ttl > 0)) {
      throw new RangeError(
        `PostgresStorage: ttl must be a positive number of milliseconds, got ${ttl}. ` +
          `Leave it out for sessions that never expire.`,
      );
    }
    this.ttl = ttl === Infinity ? undefined : ttl;
    this.#createTable = options.createTable ?? true;
    this.#names = tableNames(this.schema, this.table);
    this.leaseTable = this.#names.leaseTable;
    const valueType = options.valueType ?? "jsonb";
    if (valueType !== "jsonb" && valueType !== "json") {
      throw new TypeError(
        `PostgresStorage: valueType must be "jsonb" or "json", got ${String(valueType)}.`,
      );
    }
    this.valueType = valueType;
    this.#sql = buildStatements(
      this.#names,
      pg.escapeIdentifier,
      this.ttl !== undefined,
      valueType,
    );
  }

  /**
   * Opens a connection pool for `connectionString` and returns a storage that
   * owns it: {@link PostgresStorage.close} ends the pool. Errors of idle
   * connections in that pool are absorbed; operations still see their own
   * errors.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect<{ step: string }>(
   *   Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/test",
   *   { table: "wizard_sessions", ttl: 3_600_000 },
   * );
   * await storage.write("42", { step: "start" });
   * await storage.close();
   * ```
   *
   * @param connectionString A URL like `postgres://user:password@host:5432/db`.
   * @param options The same options as the constructor.
   * @returns A storage owning its pool.
   */
  static connect<T>(
    connectionString: string,
    options?: PostgresStorageOptions,
  ): PostgresStorage<T> {
    const pool = new pg.Pool({ connectionString });
    // An idle connection that breaks is dropped by the pool; without a
    // listener the 'error' event would end the process.
    pool.on("error", () => {});
    try {
      const storage = new PostgresStorage<T>(pool, options);
      storage.#owned = pool;
      return storage;
    } catch (err) {
      void pool.end();
      throw err;
    }
  }

  /**
   * The DDL that creates the tables and the index for `options`, for running
   * by hand (for example in a migration) before using `createTable: false`.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * console.log(PostgresStorage.createTableSql({ schema: "bot", table: "sessions" }));
   * ```
   *
   * @param options The table and schema; other options are ignored.
   * @returns SQL text with one statement per line group.
   */
  static createTableSql(
    options: Pick<PostgresStorageOptions, "table" | "schema" | "valueType"> = {},
  ): string {
    const table = checkIdentifier("table", options.table ?? "sessions");
    const schema = options.schema === undefined
      ? undefined
      : checkIdentifier("schema", options.schema);
    return createTableSql(tableNames(schema, table), pg.escapeIdentifier, options.valueType);
  }

  /** Runs one statement after the tables exist. */
  async #query(text: string, values: unknown[], key?: string): Promise<PostgresQueryResult> {
    if (this.#createTable && !this.#created) await this.#ensureTables();
    try {
      return await this.#db.query(text, values);
    } catch (err) {
      if (!this.#createTable && (err as { code?: unknown })?.code === NO_TABLE) {
        throw new SessionError(
          `PostgresStorage: the table ${this.#label()} does not exist. With createTable: false ` +
            `it must be created by hand; run the SQL from PostgresStorage.createTableSql() ` +
            `(see the README), or leave createTable on.`,
          key,
          { cause: err },
        );
      }
      throw err;
    }
  }

  #label(): string {
    const table = pg.escapeIdentifier(this.table);
    return this.schema === undefined ? table : `${pg.escapeIdentifier(this.schema)}.${table}`;
  }

  #ensureTables(): Promise<void> {
    // A failed attempt is forgotten, so the next operation tries again.
    this.#ready ??= this.#createTables().catch((err) => {
      this.#ready = undefined;
      throw new SessionError(
        `PostgresStorage: could not create the session table ${this.#label()}: ` +
          `${(err as Error)?.message ?? err}. Check that the database is reachable, that the ` +
          `schema exists and that the user may create tables in it; or create the tables by ` +
          `hand (PostgresStorage.createTableSql()) and pass createTable: false.`,
        undefined,
        { cause: err },
      );
    });
    return this.#ready;
  }

  async #createTables(): Promise<void> {
    // One simple-protocol query: the statements run in one implicit
    // transaction, serialized across processes by the advisory lock. Should
    // a creation still race (someone creating the table by hand), PostgreSQL
    // reports a duplicate; the objects exist then, so one retry settles it.
    try {
      await this.#db.query(this.#sql.ddl);
    } catch (err) {
      if (!CREATE_RACE.has((err as { code?: string })?.code ?? "")) throw err;
      await this.#db.query(this.#sql.ddl);
    }
    this.#created = true;
  }

  /** The parameters of a statement, with the TTL appended when there is one. */
  #params(...values: unknown[]): unknown[] {
    return this.ttl === undefined ? values : [...values, this.ttl];
  }

  /**
   * Returns the session stored under `key`, or `undefined` if there is none
   * or it expired. With a TTL, a session with less than half of its TTL left
   * gets a fresh expiry in the same statement; its value is not rewritten.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect<{ count: number }>("postgres://postgres@127.0.0.1:5432/test");
   * console.log(await storage.read("42"));
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @returns The session, or `undefined`.
   */
  async read(key: string): Promise<T | undefined> {
    const row = await this.#readRow(key);
    return row === undefined ? undefined : deserializeSession<T>(row.text);
  }

  /**
   * Stores `value` under `key` with one upsert, replacing what was there and
   * starting a new TTL. Throws a `SessionValueError` before touching the
   * database if the value is not JSON data.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * await storage.write("42", { count: 1 });
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param value The session data.
   */
  async write(key: string, value: T): Promise<void> {
    const text = this.#serialize(key, value);
    await this.#query(this.#sql.write, this.#params(key, text, newVersion()), key);
    await this.#maybePurge();
  }

  /**
   * Removes the session stored under `key`; a missing key is fine.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * await storage.delete("42");
   * await storage.close();
   * ```
   *
   * @param key The session key.
   */
  async delete(key: string): Promise<void> {
    checkKey(key);
    await this.#query(this.#sql.delete, [key], key);
  }

  /**
   * Tells whether an unexpired session is stored under `key`, without
   * reading its value or renewing it.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * console.log(await storage.has("42"));
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @returns Whether a live session exists.
   */
  async has(key: string): Promise<boolean> {
    checkKey(key);
    return (await this.#query(this.#sql.has, [key], key)).rows.length > 0;
  }

  /**
   * Lists the keys of all unexpired sessions in key order, fetching them
   * page by page (keyset pagination), so the table is never loaded at once.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * for await (const key of storage.readAllKeys()) console.log(key);
   * await storage.close();
   * ```
   *
   * @returns The keys, as an async iterator.
   */
  async *readAllKeys(): AsyncGenerator<string, void, undefined> {
    for await (const row of this.#pages(this.#sql.firstKeys, this.#sql.nextKeys, KEY_PAGE)) {
      yield row.key as string;
    }
  }

  /**
   * Lists all unexpired sessions in key order, page by page.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect<{ count: number }>("postgres://postgres@127.0.0.1:5432/test");
   * let total = 0;
   * for await (const session of storage.readAllValues()) total += session.count;
   * await storage.close();
   * ```
   *
   * @returns The sessions, as an async iterator.
   */
  async *readAllValues(): AsyncGenerator<T, void, undefined> {
    for await (const [, value] of this.readAllEntries()) yield value;
  }

  /**
   * Lists all unexpired sessions with their keys in key order, page by page.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * for await (const [key, session] of storage.readAllEntries()) console.log(key, session);
   * await storage.close();
   * ```
   *
   * @returns Pairs of key and session, as an async iterator.
   */
  async *readAllEntries(): AsyncGenerator<[key: string, value: T], void, undefined> {
    const rows = this.#pages(this.#sql.firstEntries, this.#sql.nextEntries, VALUE_PAGE);
    for await (const row of rows) {
      yield [row.key as string, deserializeSession<T>(row.value as string)];
    }
  }

  async *#pages(
    first: string,
    next: string,
    size: number,
  ): AsyncGenerator<Record<string, unknown>, void, undefined> {
    let rows = (await this.#query(first, [size])).rows;
    while (true) {
      yield* rows;
      if (rows.length < size) return;
      const last = rows[rows.length - 1].key;
      rows = (await this.#query(next, [last, size])).rows;
    }
  }

  /**
   * Deletes up to `limit` expired sessions and returns how many went. Writes
   * call this now and then by themselves (on the first write and every
   * hundredth after it); call it from a scheduled job if you want expired
   * rows gone sooner.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test", { ttl: 60_000 });
   * while (await storage.purgeExpired(1000) === 1000) { }
   * await storage.close();
   * ```
   *
   * @param limit The most rows to delete in this call. Default 100.
   * @returns The number of rows deleted.
   */
  async purgeExpired(limit: number = PURGE_BATCH): Promise<number> {
    if (!(Number.isInteger(limit) && limit > 0)) {
      throw new RangeError(`PostgresStorage: purgeExpired needs a positive integer, got ${limit}.`);
    }
    return (await this.#query(this.#sql.purge, [limit])).rowCount ?? 0;
  }

  async #maybePurge(): Promise<void> {
    if (this.ttl === undefined || this.#writes++ % PURGE_EVERY !== 0) return;
    try {
      await this.purgeExpired();
    } catch {
      // Purging is housekeeping: the write itself succeeded, and expired rows
      // are invisible anyway. The next batch tries again.
    }
  }

  /**
   * Checks the key and the value and returns the JSON text to store;
   * refuses text a jsonb column cannot hold, before anything is sent.
   */
  #serialize(key: string, value: T): string {
    checkKey(key);
    const text = serializeSession(value, key);
    if (this.valueType === "jsonb" && JSONB_UNSAFE.test(text)) {
      throw new SessionValueError(
        `Cannot store the session of key "${key}": it contains a string with the NUL character ` +
          `(\\u0000) or an unpaired surrogate, which a PostgreSQL jsonb column cannot hold. ` +
          `Remove it, or create the storage with valueType: "json" to keep the exact JSON text. ` +
          `Nothing was written.`,
        key,
        "$",
      );
    }
    return text;
  }

  /**
   * Reads the session of `key` with its version token (picked at random by
   * the write that stored it). Renews the expiry as {@link read} does.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect<{ count: number }>("postgres://postgres@127.0.0.1:5432/test");
   * const { value, version } = await storage.readVersioned("42");
   * await storage.writeIfVersion("42", { count: (value?.count ?? 0) + 1 }, version);
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @returns The session (or `undefined`) and its version (or `null`).
   */
  async readVersioned(key: string): Promise<VersionedValue<T>> {
    const row = await this.#readRow(key);
    if (row === undefined) return { value: undefined, version: null };
    return { value: deserializeSession<T>(row.text), version: row.version };
  }

  /**
   * One `SELECT` of the value as text and its version (renewing the expiry),
   * or `undefined` when no live session is stored.
   */
  async #readRow(key: string): Promise<{ text: string; version: string } | undefined> {
    checkKey(key);
    const { rows } = await this.#query(this.#sql.read, this.#params(key), key);
    if (rows.length === 0) return undefined;
    return { text: rows[0].value as string, version: rows[0].version as string };
  }

  /**
   * Stores `value` if the stored version is still `expected` (`null`: only if
   * no live session is stored), in one statement. Resolves to the new version,
   * or to `null` when someone else changed the session and nothing was
   * written.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * const version = await storage.writeIfVersion("42", { count: 1 }, null);
   * console.log(version === null ? "someone was faster" : "written");
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param value The session data.
   * @param expected The version read before, or `null` for "nothing stored".
   * @returns The new version, or `null` if nothing was written.
   */
  async writeIfVersion(key: string, value: T, expected: string | null): Promise<string | null> {
    const text = this.#serialize(key, value);
    const version = newVersion();
    let result: PostgresQueryResult;
    if (expected == null) {
      result = await this.#query(this.#sql.insertIfAbsent, this.#params(key, text, version), key);
    } else {
      if (!isVersion(expected)) return null;
      const values = this.#params(key, text, expected, version);
      result = await this.#query(this.#sql.updateIfVersion, values, key);
    }
    if (!result.rowCount) return null;
    await this.#maybePurge();
    return version;
  }

  /**
   * Deletes the session of `key` if its version is still `expected`, in one
   * statement. Resolves to `false` when the stored version differs.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * const { version } = await storage.readVersioned("42");
   * console.log(await storage.deleteIfVersion("42", version));
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param expected The version read before, or `null` for "nothing stored".
   * @returns Whether the stored version matched.
   */
  async deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
    checkKey(key);
    if (expected == null) {
      return (await this.#query(this.#sql.absent, [key], key)).rows.length > 0;
    }
    if (!isVersion(expected)) return false;
    return !!(await this.#query(this.#sql.deleteIfVersion, [key, expected], key)).rowCount;
  }

  /**
   * Takes the lease of `key` for `owner` for `ttl` ms with one upsert that
   * succeeds only if the lease is free, expired or already `owner`'s. Leases
   * live in their own table ({@link PostgresStorage.leaseTable}) and never
   * show up among sessions.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * if (await storage.acquireLease("42", crypto.randomUUID(), 5000)) console.log("mine");
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param owner Who takes the lease, unique per holder.
   * @param ttl How long the lease lasts in ms.
   * @returns `false` if someone else holds the lease.
   */
  async acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    checkLease(key, owner, ttl);
    return (await this.#query(this.#sql.acquireLease, [key, owner, ttl], key)).rows.length > 0;
  }

  /**
   * Extends `owner`'s lease of `key` to `ttl` ms from now.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * const owner = crypto.randomUUID();
   * await storage.acquireLease("42", owner, 5000);
   * console.log(await storage.renewLease("42", owner, 5000)); // true
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param owner The holder.
   * @param ttl The new duration in ms.
   * @returns `false` if the lease expired or someone else holds it.
   */
  async renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    checkLease(key, owner, ttl);
    return (await this.#query(this.#sql.renewLease, [key, owner, ttl], key)).rows.length > 0;
  }

  /**
   * Gives up `owner`'s lease of `key`; does nothing if someone else holds it.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * await storage.releaseLease("42", "worker-1");
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param owner The holder.
   */
  async releaseLease(key: string, owner: string): Promise<void> {
    checkLease(key, owner, 1);
    await this.#query(this.#sql.releaseLease, [key, owner], key);
  }

  /**
   * Ends the pool if {@link PostgresStorage.connect} opened it; does nothing
   * for a pool or client passed to the constructor. Safe to call twice.
   *
   * @example
   * ```ts
   * import { PostgresStorage } from "@sessionkit/grammy/postgres";
   *
   * const storage = PostgresStorage.connect("postgres://postgres@127.0.0.1:5432/test");
   * await storage.close();
   * ```
   */
  close(): Promise<void> {
    const pool = this.#owned;
    if (pool === undefined) return Promise.resolve();
    this.#closed ??= pool.end();
    return this.#closed;
  }
}

/** PostgreSQL text holds neither NUL characters nor lone surrogates. */
function checkKey(key: string): void {
  if (typeof key !== "string") {
    throw new TypeError(`PostgresStorage: session keys must be strings, got ${typeof key}.`);
  }
  if (key.includes("\0") || !key.isWellFormed()) {
    throw new SessionError(
      `PostgresStorage: the session key ${JSON.stringify(key)} contains a NUL character or a ` +
        `lone surrogate, which PostgreSQL text cannot hold (the driver would turn a lone ` +
        `surrogate into U+FFFD, mixing up keys). Build keys from well-formed text.`,
      key,
    );
  }
  const bytes = utf8Length(key);
  if (bytes > MAX_KEY_BYTES) {
    const shown = key.length > 40 ? `${key.slice(0, 40)}…` : key;
    throw new SessionError(
      `PostgresStorage: the session key "${shown}" is ${bytes} bytes long; keys are limited to ` +
        `${MAX_KEY_BYTES} bytes (PostgreSQL's primary-key index cannot hold long keys reliably: ` +
        `its limit of about 2.7 KB depends on how well the key compresses). Use shorter keys, ` +
        `for example a hash of a long key in getSessionKey. Nothing was written.`,
      key,
    );
  }
}

/** The longest session key in UTF-8 bytes: safely under the btree index row limit. */
const MAX_KEY_BYTES = 2048;

function utf8Length(text: string): number {
  // Fast path for the usual short ASCII keys.
  if (text.length <= MAX_KEY_BYTES / 3) return text.length;
  return new TextEncoder().encode(text).length;
}

function checkLease(key: string, owner: string, ttl: number): void {
  checkKey(key);
  if (typeof owner !== "string" || owner.includes("\0") || !owner.isWellFormed()) {
    throw new TypeError("PostgresStorage: a lease owner must be well-formed text without NUL.");
  }
  if (!(typeof ttl === "number" && ttl > 0 && Number.isFinite(ttl))) {
    throw new RangeError(
      `PostgresStorage: a lease ttl must be a positive, finite number of milliseconds, got ${ttl}.`,
    );
  }
}
