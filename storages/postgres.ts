/**
 * `PostgresStorage`: sessions in a PostgreSQL table, through
 * [node-postgres](https://node-postgres.com) (`npm:pg`).
 *
 * The table is created on first use (safe when several processes start at
 * once), the lease table once a lease is first used. Every identifier is
 * escaped with the driver's identifier escaping and every value is a bound
 * parameter, so table and schema names with any characters are safe. The
 * value column is `json` by default: the exact JSON text of each session.
 * Sessions can expire after a TTL; expired rows are never returned and are
 * deleted in small batches while the storage is written to, without timers.
 * Listing pages through the table by key. Conditional writes and leases let
 * several bot processes share one database.
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

import { checkFlag, checkOptionNames, checkTimeout, checkTtl } from "./shared/options.ts";
// @ts-types="./postgres/pg_module.d.ts"
import pgModule from "npm:pg@^8";
import { AsyncDriverStorage } from "./shared/async_driver_storage.ts";
import { checkIdentifier } from "./postgres/names.ts";
import { createTableSql, tableNames } from "./postgres/sql.ts";
import { PostgresDriver } from "./postgres/driver.ts";
import { checkPurgeLimit, PURGE_BATCH } from "./shared/purging.ts";
import { timed, withTimeout } from "./shared/timeout.ts";
import { poolCheck } from "./shared/pool_check.ts";
import type { PostgresQueryable, PostgresStorageOptions, ValueType } from "./postgres/types.ts";

export type {
  PostgresQueryable,
  PostgresQueryResult,
  PostgresStorageOptions,
  ValueType,
} from "./postgres/types.ts";
export type { MaybePromise, StorageAdapter } from "../src/storage.ts";
export type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";
export { AsyncDriverStorage } from "./shared/async_driver_storage.ts";
export { DriverStorage } from "./shared/driver_storage.ts";

/** A pool opened by {@link PostgresStorage.connect}. */
interface OwnedPool extends PostgresQueryable {
  on(event: "error" | "release", listener: (err: Error) => void): unknown;
  end(): Promise<void>;
  /** Connections in the pool that no query uses now. */
  readonly idleCount?: number;
}

/**
 * The two things used from `npm:pg`, typed here so that the published module
 * does not pull in `@types/pg` and `@types/node`.
 */
const pg = pgModule as unknown as {
  Pool: new (config: {
    connectionString: string;
    query_timeout?: number;
    connectionTimeoutMillis?: number;
  }) => OwnedPool;
  escapeIdentifier(name: string): string;
};

/**
 * How long a query of a pool `connect` opened may go unanswered before pg
 * gives it up and the pool drops its connection, in storage timeouts: two,
 * so that a slow answer (one that came after the storage gave the call up)
 * does not cost a connection, and a silent connection (half-open) still
 * goes soon.
 */
const SILENT_TIMEOUTS = 2;

/** The schema option, checked. */
function schemaOf(options: { schema?: string }): string | undefined {
  return options.schema === undefined ? undefined : checkIdentifier("schema", options.schema);
}

/** The value type option, checked. */
function valueTypeOf(options: { valueType?: ValueType }): ValueType {
  const type = options.valueType ?? "json";
  if (type !== "json" && type !== "jsonb") {
    throw new TypeError(
      `PostgresStorage: valueType must be "json" or "jsonb", got ${String(type)}.`,
    );
  }
  return type;
}

/**
 * Stores sessions in a PostgreSQL table through `npm:pg`.
 *
 * Each session is one row: `key text` (primary key), `value` (`json` by
 * default, or `jsonb`) holding the JSON text of the serialization contract,
 * a `version` (a random 63-bit number picked by each write), an optional
 * `expires_at` and `updated_at`. Every read, write, delete and lease call is
 * one statement (a write runs a small purge batch now and then). Every
 * method answers with a promise; a bad key or value rejects it before
 * anything is sent. An operation that takes longer than `timeout` ms
 * (default 10 000) fails with a `SessionError` naming it.
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
export class PostgresStorage<T> extends AsyncDriverStorage<T> {
  /** The schema name as given, or `undefined` for the search path. */
  readonly schema: string | undefined;
  /** The session table name, unescaped. */
  readonly table: string;
  /** The lease table name, unescaped: `<table>_leases`, shortened with a hash if needed. */
  readonly leaseTable: string;
  /** The time to live in milliseconds, or `undefined` for none. */
  readonly ttl: number | undefined;
  /** The column type of the value for a table this storage creates: `json` (default) or `jsonb`. */
  readonly valueType: ValueType;
  /** How long one operation may take, in milliseconds; `Infinity` for no bound. */
  readonly timeout: number;
  readonly #driver: PostgresDriver;

  /**
   * Creates a storage on a `Pool` or `Client` you manage. Nothing is sent to
   * the database until the first operation.
   *
   * @param db A `pg.Pool` or a connected `pg.Client` (anything with `query`).
   * @param options Table, schema, TTL, column type, whether to create tables, and the timeout.
   */
  constructor(db: PostgresQueryable, options: PostgresStorageOptions = {}) {
    if (typeof db?.query !== "function") {
      throw new TypeError(
        "PostgresStorage: the first argument must be a pg Pool or Client (something with a " +
          "query method). To connect with a URL, use PostgresStorage.connect(url) instead.",
      );
    }
    checkOptionNames("PostgresStorage", options, [
      "table",
      "schema",
      "ttl",
      "createTable",
      "valueType",
      "timeout",
    ]);
    const table = checkIdentifier("table", options.table ?? "sessions");
    const schema = schemaOf(options);
    const ttl = checkTtl("PostgresStorage", options.ttl);
    const names = tableNames(schema, table);
    const valueType = valueTypeOf(options);
    const timeout = checkTimeout("PostgresStorage", options.timeout);
    const driver = new PostgresDriver(db, {
      names,
      escape: pg.escapeIdentifier,
      ttl,
      valueType,
      createTable: checkFlag("PostgresStorage", "createTable", options.createTable) ?? true,
    });
    super(withTimeout(driver, timeout));
    this.#driver = driver;
    this.schema = schema;
    this.table = table;
    this.leaseTable = names.leaseTable;
    this.ttl = ttl;
    this.valueType = valueType;
    this.timeout = timeout;
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
    // A query unanswered for two timeouts fails in pg too, and the pool then
    // drops its connection: one that went silent (half-open) is not used
    // again. When that happens, every idle connection runs SELECT 1 at once,
    // so that the other silent ones are found within two more timeouts.
    // Connecting is bounded the same way.
    const options_ = typeof options === "object" && options !== null ? options : {};
    const timeout = checkTimeout("PostgresStorage", options_.timeout);
    const bound = timeout === Infinity ? undefined : timeout * SILENT_TIMEOUTS;
    const pool = new pg.Pool({
      connectionString,
      query_timeout: bound,
      connectionTimeoutMillis: bound,
    });
    // An idle connection that breaks is dropped by the pool; without a
    // listener the 'error' event would end the process.
    pool.on("error", () => {});
    const check = poolCheck(() => pool.query("SELECT 1", []), () => pool.idleCount ?? 0);
    pool.on("release", (err: unknown) => {
      if (err instanceof Error && err.message === "Query read timeout") check();
    });
    try {
      const storage = new PostgresStorage<T>(pool, options);
      storage.#driver.adopt(pool);
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
   * @param options The table, schema and value type; other options are ignored.
   * @returns SQL text with one statement per line group.
   */
  static createTableSql(
    options: Pick<PostgresStorageOptions, "table" | "schema" | "valueType"> = {},
  ): string {
    const names = tableNames(
      schemaOf(options),
      checkIdentifier("table", options.table ?? "sessions"),
    );
    return createTableSql(names, pg.escapeIdentifier, valueTypeOf(options));
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
  purgeExpired(limit: number = PURGE_BATCH): Promise<number> {
    try {
      checkPurgeLimit("PostgresStorage", limit);
    } catch (err) {
      return Promise.reject(err);
    }
    return timed(
      "PostgresStorage",
      this.timeout,
      { what: "purging expired sessions", outcome: "Some of them may still be deleted." },
      this.#driver.purge(limit),
    ) as Promise<number>;
  }
}
