/**
 * Running the PostgreSQL storage's statements: a statement that never ran
 * (the server refused the connection) or that PostgreSQL rolled back as a
 * whole (a deadlock) is retried for a while; a missing table is created on
 * the spot (the lease table only when a lease is first used, the function
 * of the locked read when that is first used); and errors say what to do.
 *
 * @module
 */

import { SessionError } from "../../src/errors.ts";
import type { Statements } from "./sql.ts";
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

/** The SQLSTATE of a node-postgres error, or `""`. */
export function sqlState(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}

/**
 * Which of the storage's tables a statement uses: `both` for the locked
 * read and save, which create both tables and the function of the locked
 * read.
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
  readonly #creating = new Map<TableKind, Promise<void>>();

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
   * Creates the table of kind `table` (for `lease` and `both`, both tables
   * and the functions of the locked calls); concurrent callers share one
   * attempt.
   */
  create(table: TableKind): Promise<void> {
    let creating = this.#creating.get(table);
    if (creating === undefined) {
      // The lease table comes with what the locked calls need: the session
      // table and the functions (so a locked save does not find its
      // function missing later and pay for the DDL then).
      const ddl = table === "session" ? this.#sql.sessionDdl : this.#sql.lockedDdl;
      creating = this.#ddl(ddl)
        .catch((err) => {
          // A lost connection is not a problem of the table: the caller reports
          // it as the failed read or write it is. Anything else needs the user.
          const code = sqlState(err);
          if (code === "" || code.startsWith("08") || code.startsWith("57")) throw err;
          throw new SessionError(
            `PostgresStorage: could not create the ${table === "both" ? "" : `${table} `}table ${
              this.#label(table)
            }: ` +
              `${(err as Error)?.message ?? err}. Check that the database is reachable, that ` +
              `the schema exists and that the user may create tables in it; or create the ` +
              `tables by hand (PostgresStorage.createTableSql()) and pass createTable: false.`,
            undefined,
            { cause: err },
          );
        })
        .finally(() => this.#creating.delete(table));
      this.#creating.set(table, creating);
    }
    return creating;
  }

  async #ddl(text: string): Promise<void> {
    // One simple-protocol query: the statements run in one implicit
    // transaction, serialized across processes by the advisory lock. Should
    // a creation still race (someone creating the table by hand), PostgreSQL
    // reports a duplicate; the objects exist then, so one retry settles it.
    try {
      await this.#retrying(text, []);
    } catch (err) {
      if (!CREATE_RACE.has(sqlState(err))) throw err;
      await this.#retrying(text, []);
    }
  }
}
