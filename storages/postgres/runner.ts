/**
 * Running the PostgreSQL storage's statements: a statement that never ran
 * (the server refused the connection) or that PostgreSQL rolled back as a
 * whole (a deadlock) is retried for a while; a missing table is created on
 * the spot (the lease table, with the functions of the locked calls, only
 * when a lease is first used); and errors say what to do.
 *
 * @module
 */

import { SessionError } from "../../src/errors.ts";
import type { LockedObject, Statements } from "./sql.ts";
import type { PostgresQueryable, PostgresQueryResult } from "./types.ts";

/** Errors after which the statement is known not to have done anything. */
const RETRY = new Set([
  "53300", // too_many_connections: refused before the statement was sent
  "57P03", // cannot_connect_now: the server is starting up
  "40P01", // deadlock_detected: the statement was rolled back
  "40001", // serialization_failure: the statement was rolled back
]);
/** How long a statement is retried before its error is reported. */
const RETRY_FOR_MS = 5000;
/** A relation or the schema is missing. */
const MISSING = new Set(["42P01", "3F000"]);
/** Concurrent creations reporting that an object already exists. */
const CREATE_RACE = new Set(["23505", "42P07", "42710"]);

/** Whether `err` says that a concurrent creation of the same object got there first. */
function isCreationRace(err: unknown): boolean {
  const code = sqlState(err);
  return CREATE_RACE.has(code) ||
    (code === "XX000" && /concurrently updated/.test((err as Error).message));
}

/**
 * Whether `err` is a lost or refused connection rather than the server's
 * answer: no SQLSTATE (a network error), connection_exception, or a server
 * shutting down; not query_canceled (57014, a statement timeout), which is
 * the server's answer to this statement.
 */
function isConnectionError(err: unknown): boolean {
  const code = sqlState(err);
  return code === "" || code.startsWith("08") || (code.startsWith("57") && code !== "57014");
}

/**
 * Why DDL failed, when trying again does not help: insufficient_privilege
 * (no right to use PL/pgSQL, not the owner of an object of the same name),
 * undefined_object (PL/pgSQL not installed), feature_not_supported.
 */
const PERMANENT = new Set(["42501", "42704", "0A000"]);

/**
 * Whether `err` refuses the role a table, view or schema
 * (insufficient_privilege on one of them). The same code for a function
 * (EXECUTE revoked) is left to the caller, which then goes without it.
 */
function isDenied(err: unknown): boolean {
  return sqlState(err) === "42501" &&
    /permission denied for (table|relation|view|schema)/.test((err as Error).message);
}

/**
 * Whether `err` says that a table of the storage's name has another shape:
 * a column missing (undefined_column), no unique index on `key` for
 * `ON CONFLICT` (invalid_column_reference), not a table (wrong_object_type),
 * or a view that cannot take the write.
 */
function isWrongShape(err: unknown): boolean {
  const code = sqlState(err);
  return code === "42703" || code === "42P10" || code === "42809" ||
    ((code === "0A000" || code === "55000") && /\bview\b/.test((err as Error).message));
}

/** The objects of the locked calls, tables first. */
const LOCKED_OBJECTS: readonly LockedObject[] = ["session", "lease", "leaseRead", "saveRelease"];

/** The SQLSTATE of a node-postgres error, or `""`. */
export function sqlState(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

/**
 * Which of the storage's tables a statement uses: `lease` for the lease
 * calls, `both` for the locked read and save. A missing table of either
 * kind is created with both tables and the functions of the locked calls
 * (see {@link Runner.create}).
 */
export type TableKind = "session" | "lease" | "both";

/** Where and how the statements run. */
export interface RunnerOptions {
  /** Whether missing tables may be created. */
  createTable: boolean;
  /** The escaped, qualified names of the tables, for messages. */
  labels: Record<"session" | "lease", string>;
}

/**
 * Runs statements on one database handle.
 *
 * @example
 * ```ts
 * import pg from "npm:pg@^8";
 *
 * const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * const sql = buildStatements(tableNames(undefined, "sessions"), pg.escapeIdentifier, false);
 * const runner = new Runner(pool, sql, {
 *   createTable: true,
 *   labels: { session: '"sessions"', lease: '"sessions_leases"' },
 * });
 * await runner.run("session", sql.has, ["42"]);
 * ```
 */
export class Runner {
  readonly #db: PostgresQueryable;
  readonly #sql: Statements;
  readonly #options: RunnerOptions;
  readonly #creating = new Map<TableKind, Promise<boolean | undefined>>();

  /**
   * @param db The pool or client.
   * @param sql The storage's statements (for the DDL).
   * @param options Whether to create tables, and their names for messages.
   */
  constructor(db: PostgresQueryable, sql: Statements, options: RunnerOptions) {
    this.#db = db;
    this.#sql = sql;
    this.#options = options;
  }

  /**
   * Runs `text` on a table of kind `table`; if that table is missing,
   * creates it (when allowed) and runs `text` again.
   */
  async run(
    table: TableKind,
    text: string,
    values: unknown[],
    key?: string,
  ): Promise<PostgresQueryResult> {
    try {
      return await this.#creatingMissing(table, text, values, key);
    } catch (err) {
      if (isDenied(err)) throw this.#denied(table, err, key);
      if (isWrongShape(err)) throw this.#wrongShape(table, err, key);
      throw err;
    }
  }

  /**
   * The error for a table of the storage's name that is not what the
   * storage makes (a view, other columns, no primary key on `key`).
   */
  #wrongShape(table: TableKind, err: unknown, key?: string): SessionError {
    const { labels } = this.#options;
    const tables = table === "both" ? `${labels.session} and ${labels.lease}` : labels[table];
    return new SessionError(
      `PostgresStorage: ${tables} ${table === "both" ? "are" : "is"} the storage's own ` +
        `table name${table === "both" ? "s" : ""}, but what is found under ` +
        `${table === "both" ? "one of them" : "it"} is not the table the storage makes ` +
        `(${(err as Error).message}). Rename or drop that object, or give the storage a ` +
        `table name of its own (the table option; the lease table is named after it with ` +
        `_leases); PostgresStorage.createTableSql() shows the tables it needs.`,
      key,
      { cause: err },
    );
  }

  async #creatingMissing(
    table: TableKind,
    text: string,
    values: unknown[],
    key?: string,
  ): Promise<PostgresQueryResult> {
    try {
      return await this.#retrying(text, values, key);
    } catch (err) {
      if (!MISSING.has(sqlState(err))) throw err;
      if (!this.#options.createTable) {
        throw new SessionError(
          `PostgresStorage: the table ${this.#label(table)} (or its schema) does not ` +
            `exist. With createTable: false it must be created by hand; run the SQL from ` +
            `PostgresStorage.createTableSql() (see docs/postgres.md), or leave createTable on.`,
          key,
          { cause: err },
        );
      }
      await this.create(table);
      return await this.#retrying(text, values, key);
    }
  }

  /**
   * The error for a statement the role may not run on the tables (or their
   * schema): which rights the storage needs, and how to grant them.
   */
  #denied(table: TableKind, err: unknown, key?: string): SessionError {
    const { labels } = this.#options;
    const tables = table === "both" ? `${labels.session}, ${labels.lease}` : labels[table];
    return new SessionError(
      `PostgresStorage: the database role may not use ${tables}: ${(err as Error).message}. ` +
        `Have the owner of the tables grant the role the bot connects as what the storage ` +
        `needs: GRANT SELECT, INSERT, UPDATE, DELETE ON ${tables} TO <role>; and, when they ` +
        `are in a schema of their own, GRANT USAGE ON SCHEMA <schema> TO <role>. Bots that ` +
        `connect as different roles share both tables and each needs these rights ` +
        `(docs/postgres.md).`,
      key,
      { cause: err },
    );
  }

  /** The escaped name of the table of kind `table`, for messages. */
  #label(table: TableKind): string {
    const { labels } = this.#options;
    return table === "both" ? `${labels.session} or ${labels.lease}` : labels[table];
  }

  async #retrying(text: string, values: unknown[], key?: string): Promise<PostgresQueryResult> {
    const start = Date.now();
    for (let attempt = 0;; attempt++) {
      try {
        return await this.#db.query(text, values);
      } catch (err) {
        const code = sqlState(err);
        if (!RETRY.has(code)) throw err;
        if (Date.now() - start > RETRY_FOR_MS) {
          if (code !== "53300") throw err;
          throw new SessionError(
            `PostgresStorage: the server refused new connections for ${RETRY_FOR_MS / 1000} s ` +
              `(${(err as Error).message}). Raise its max_connections, or give the pools of ` +
              `your bot processes a smaller max so that all of them fit.`,
            key,
            { cause: err },
          );
        }
        const delay = Math.min(250, 5 * 2 ** attempt);
        await new Promise((resolve) => setTimeout(resolve, delay / 2 + Math.random() * delay));
      }
    }
  }

  /**
   * Creates what a statement on a table of kind `table` needs; concurrent
   * callers share one attempt. For `lease` and `both`, that is whatever is
   * missing of both tables and the functions of the locked calls, so that a
   * locked call does not find its function missing later and pay for the
   * DDL then; what exists is left alone (no lock taken on a session table
   * that is there, no second table in another schema of the search path).
   * Where the user may not make the functions (PL/pgSQL not granted, a
   * function owned by another role), only the missing tables are made and
   * the locked calls work without the functions. Resolves to whether the
   * functions are there: `true`, `false` when they cannot be made, or
   * `undefined` when making them failed for now (a lock or statement
   * timeout, a concurrent creation) and is worth another try later.
   */
  create(table: TableKind): Promise<boolean | undefined> {
    let creating = this.#creating.get(table);
    if (creating === undefined) {
      const attempt = table === "session"
        ? this.#ddl(this.#sql.sessionDdl).then(() => true, (err) => this.#failed("session", err))
        : this.#createLocked();
      creating = attempt.finally(() => this.#creating.delete(table));
      this.#creating.set(table, creating);
    }
    return creating;
  }

  async #createLocked(): Promise<boolean | undefined> {
    const { lockedExist, ddlLock } = this.#sql;
    const found = await this.#retrying(lockedExist.text, lockedExist.values);
    const row = found.rows[0] ?? {};
    const exists = row as Partial<Record<LockedObject, boolean>>;
    let missing = LOCKED_OBJECTS.filter((object) => exists[object] !== true);
    if (missing.length === 0) {
      // Everything is there, and yet a call found a table missing. With a
      // schema given, that is a function made by a process without one,
      // whose body looks for the tables along the caller's search path:
      // replaced by functions whose bodies name the schema (attack33b F2).
      if (!this.#sql.schemaNamed) return true;
      missing = ["leaseRead", "saveRelease"];
    }
    // What is missing goes next to the session table, wherever along the
    // search path that was found: every process whose search path finds
    // the session table then finds the same lease table and functions.
    // Where the user may not create objects there, it goes where the user's
    // creations go (the first schema of the search path).
    const sessionSchema = row.sessionSchema;
    const lockedParts = this.#sql.lockedParts(
      typeof sessionSchema === "string" ? sessionSchema : undefined,
    );
    try {
      await this.#ddl([ddlLock, ...missing.map((object) => lockedParts[object])].join("\n"));
      return true;
    } catch (err) {
      if (isConnectionError(err)) throw err;
      // Then the tables alone, each on its own: the functions are optional.
      for (const object of ["session", "lease"] as const) {
        if (!missing.includes(object)) continue;
        await this.#ddl(`${ddlLock}\n${lockedParts[object]}`).catch((e) => this.#failed(object, e));
      }
      return PERMANENT.has(sqlState(err)) ? false : undefined;
    }
  }

  /**
   * Throws what creating the table of kind `table` failed with: a lost
   * connection as it is (the caller reports it as the failed read or write
   * it is), anything else as an error that says what to do.
   */
  #failed(table: "session" | "lease", err: unknown): never {
    if (isConnectionError(err)) throw err;
    throw new SessionError(
      `PostgresStorage: could not create the ${table} table ${this.#options.labels[table]}: ` +
        `${(err as Error)?.message ?? err}. Check that the database is reachable, that ` +
        `the schema exists and that the user may create tables in it; or create the ` +
        `tables by hand (PostgresStorage.createTableSql()) and pass createTable: false.`,
      undefined,
      { cause: err },
    );
  }

  async #ddl(text: string): Promise<void> {
    // One simple-protocol query: the statements run in one implicit
    // transaction, serialized across processes by the advisory lock. Should
    // a creation still race (the same DDL run by hand, or by an older
    // version keyed otherwise), PostgreSQL reports a duplicate, or
    // "tuple concurrently updated" for a function replaced meanwhile; the
    // objects exist then, so a retry or two settle it.
    for (let attempt = 0;; attempt++) {
      try {
        return void await this.#retrying(text, []);
      } catch (err) {
        if (attempt >= 2 || !isCreationRace(err)) throw err;
      }
    }
  }
}
