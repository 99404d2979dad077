/**
 * The PostgreSQL driver: one statement per read (a second one when its
 * expiry is due for renewal or clearing, about once per half TTL), write,
 * delete, `has` and lease call (a purge batch now and then after a write),
 * keyset listing, and
 * the key rules of PostgreSQL `text`. `DriverStorage` turns it into
 * `PostgresStorage`.
 *
 * @module
 */

import { PURGE_BATCH, PurgeSchedule } from "../shared/purging.ts";
import { SessionError, SessionValueError } from "../../src/errors.ts";
import type { KeyRules, ScanPage, SessionDriver, StoredRecord } from "../shared/driver.ts";
import type { LockedSave } from "../../src/capabilities.ts";
import { Runner, sqlState, type TableKind } from "./runner.ts";
import { buildStatements, type EscapeIdentifier, type Statements, type TableNames } from "./sql.ts";
import type { PostgresQueryable, PostgresQueryResult, ValueType } from "./types.ts";
import { isVersion, newVersion } from "../shared/bigint_versions.ts";

/** What a driver is built from; everything already checked. */
export interface PostgresDriverOptions {
  /** The table, index and lease table names. */
  names: TableNames;
  /** Identifier escaping, `pg.escapeIdentifier`. */
  escape: EscapeIdentifier;
  /** Time to live in ms, or `undefined`. */
  ttl: number | undefined;
  /** The column type used when creating the table. */
  valueType: ValueType;
  /** Whether missing tables are created. */
  createTable: boolean;
}

/**
 * PostgreSQL `text` holds neither NUL nor lone surrogates (node-postgres
 * would send U+FFFD for one, mixing up keys), and the primary-key index
 * cannot hold long keys reliably.
 */
const KEY_RULES: KeyRules = {
  noNul: true,
  wellFormed: true,
  maxBytes: 2048,
  maxBytesReason: "PostgreSQL's primary-key index cannot hold long keys reliably: its limit " +
    "of about 2.7 KB depends on how well the key compresses",
};

/**
 * JSON text holding `\u0000` or a lone surrogate escape (JSON.stringify
 * escapes lone surrogates and writes pairs as they are), not preceded by an
 * escaping backslash.
 */
const JSONB_UNSAFE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/** The most rows fetched per page when listing values. */
const VALUE_PAGE = 50;

/** The functions of the locked calls (see sql.ts). */
type LockedFunction = "leaseRead" | "saveRelease";

/**
 * What a call of a function answers when it cannot be used: missing
 * (undefined_function), not to be told from another of the same name made
 * by hand (ambiguous_function), or not granted to the role
 * (insufficient_privilege: EXECUTE revoked from PUBLIC). The statement did
 * nothing (a failed statement changes nothing), and the statement without
 * the function needs only the rights on the tables.
 */
const NO_FUNCTION = new Set(["42883", "42725", "42501"]);

/**
 * How long the locked calls go without a function that could not be made
 * for now (a lock timeout, a trigger that refused it) before they try to
 * make it again: at most one attempt a second, not one per update.
 */
export const FUNCTION_RETRY_MS = 1000;

/**
 * A driver over a pool or client.
 *
 * @example
 * ```ts
 * import pg from "npm:pg@^8";
 * import { DriverStorage } from "@sessionkit/grammy";
 *
 * const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
 * const driver = new PostgresDriver(pool, {
 *   names: tableNames(undefined, "sessions"),
 *   escape: pg.escapeIdentifier,
 *   ttl: undefined,
 *   valueType: "json",
 *   createTable: true,
 * });
 * const storage = new DriverStorage<{ count: number }>(driver);
 * ```
 */
export class PostgresDriver implements SessionDriver<string> {
  /** Starts every error message. */
  readonly name = "PostgresStorage";
  /** Every write draws a new version. */
  readonly uniqueVersions = true;
  /** What PostgreSQL `text` and the key index can hold. */
  readonly keys: KeyRules = KEY_RULES;
  readonly #sql: Statements;
  readonly #runner: Runner;
  readonly #ttl: number | undefined;
  readonly #jsonb: boolean;
  readonly #label: string;
  readonly #purging = new PurgeSchedule();
  readonly #createTable: boolean;
  /**
   * Whether each function of the locked calls is there: `undefined` until a
   * call finds out; `false` (for the storage's life) when it is missing and
   * could not be created, so that locked reads take the lease and read in
   * two statements, and locked saves use the statement without it.
   */
  readonly #functions: Record<
    LockedFunction,
    Promise<boolean | undefined> | boolean | undefined
  > = {
    leaseRead: undefined,
    saveRelease: undefined,
  };
  /**
   * For a storage given `schema`: whether the functions' bodies name its
   * tables (checked at the first locked call).
   */
  #bodies: Promise<boolean | undefined> | boolean | undefined;
  /** Until when functions that could not be made for now are not tried again. */
  #notBefore = 0;
  #owned: { end(): Promise<void> } | undefined;
  #closed: Promise<void> | undefined;

  /**
   * @param db The pool or client; it stays open unless {@link PostgresDriver.adopt}ed.
   * @param options Names, TTL, column type and table creation.
   */
  constructor(db: PostgresQueryable, options: PostgresDriverOptions) {
    const { names, escape } = options;
    this.#ttl = options.ttl;
    this.#jsonb = options.valueType === "jsonb";
    this.#createTable = options.createTable;
    this.#sql = buildStatements(names, escape, options.ttl !== undefined, options.valueType);
    const qualified = (table: string) =>
      (names.schema === undefined ? "" : `${escape(names.schema)}.`) + escape(table);
    this.#label = qualified(names.table);
    this.#runner = new Runner(db, this.#sql, {
      createTable: options.createTable,
      labels: { session: this.#label, lease: qualified(names.leaseTable) },
    });
  }

  /** Makes {@link PostgresDriver.close} end `pool`. */
  adopt(pool: { end(): Promise<void> }): void {
    this.#owned = pool;
  }

  /** The statement parameters, with the TTL appended when there is one. */
  #params(...values: unknown[]): unknown[] {
    return this.#ttl === undefined ? values : [...values, this.#ttl];
  }

  #run(text: string, values: unknown[], key?: string, table: TableKind = "session") {
    return this.#runner.run(table, text, values, key);
  }

  /** One statement: the row, with its expiry renewed (TTL) or cleared (none). */
  async read(key: string): Promise<StoredRecord<string> | undefined> {
    // Renewing (or clearing) the expiry is a second statement, only when due.
    // If it finds the version gone (replaced, or expired and perhaps purged
    // since the SELECT), the session is read again, once: what a read hands
    // out is always live for at least a TTL, or nothing.
    for (let attempt = 0; attempt < 2; attempt++) {
      const { rows } = await this.#run(this.#sql.read, this.#params(key), key);
      if (rows.length === 0) return undefined;
      const version = rows[0].version as string;
      const record = { payload: rows[0].value as string, version };
      if (rows[0].due !== true) return record;
      const touched = await this.#run(this.#sql.touch, this.#params(key, version), key);
      if (touched.rowCount) return record;
    }
    return undefined;
  }

  /** One upsert, conditional insert or compare-and-set, by `expected`. */
  async write(
    key: string,
    payload: string,
    expected: string | null | undefined,
  ): Promise<string | null> {
    if (this.#jsonb && JSONB_UNSAFE.test(payload)) throw this.#refusal(key);
    const version = newVersion();
    let result: PostgresQueryResult;
    try {
      if (expected === undefined) {
        result = await this.#run(this.#sql.write, this.#params(key, payload, version), key);
      } else if (expected === null) {
        const values = this.#params(key, payload, version);
        result = await this.#run(this.#sql.insertIfAbsent, values, key);
      } else {
        if (!isVersion(expected)) return null;
        const values = this.#params(key, payload, expected, version);
        result = await this.#run(this.#sql.updateIfVersion, values, key);
      }
    } catch (err) {
      throw this.#refused(key, err);
    }
    if (!result.rowCount) return null;
    await this.#maybePurge();
    return version;
  }

  /**
   * A jsonb column of a table created by an earlier version refuses such
   * text in the server; the statement did nothing.
   */
  #refused(key: string, err: unknown): unknown {
    const code = sqlState(err);
    if (code === "22P05" || (code === "22P02" && /json/i.test(String(err)))) {
      return this.#refusal(key);
    }
    return err;
  }

  #refusal(key: string): SessionValueError {
    return new SessionValueError(
      `Cannot store the session of key "${key}": it contains a string with the NUL character ` +
        `(\\u0000) or an unpaired surrogate, which the jsonb value column of ${this.#label} ` +
        `cannot hold. Remove it, or keep the exact JSON text in a json column: valueType: ` +
        `"json" for a new table, ALTER TABLE ${this.#label} ALTER COLUMN value TYPE json for ` +
        `this one. Nothing was written.`,
      key,
      "$",
    );
  }

  /** One `DELETE`, or one check that nothing is stored for `expected === null`. */
  async delete(key: string, expected: string | null | undefined): Promise<boolean> {
    if (expected === undefined) {
      await this.#run(this.#sql.delete, [key], key);
      return true;
    }
    if (expected === null) return (await this.#run(this.#sql.absent, [key], key)).rows.length > 0;
    if (!isVersion(expected)) return false;
    return !!(await this.#run(this.#sql.deleteIfVersion, [key, expected], key)).rowCount;
  }

  /** One `SELECT 1`; renews nothing. */
  async has(key: string): Promise<boolean> {
    return (await this.#run(this.#sql.has, [key], key)).rows.length > 0;
  }

  /** One page in key order after `cursor` (keyset pagination), at most 50 rows with values. */
  async scan(
    cursor: string | undefined,
    limit: number,
    values: boolean,
  ): Promise<ScanPage<string>> {
    const size = values ? Math.min(limit, VALUE_PAGE) : limit;
    const sql = this.#sql;
    const { rows } = cursor === undefined
      ? await this.#run(values ? sql.firstEntries : sql.firstKeys, [size])
      : await this.#run(values ? sql.nextEntries : sql.nextKeys, [cursor, size]);
    const keys = rows.map((row) => row.key as string);
    return {
      keys,
      payloads: values ? rows.map((row) => row.value as string) : undefined,
      cursor: rows.length < size ? undefined : keys[keys.length - 1],
    };
  }

  /** One upsert into the lease table, which is created on first use. */
  async acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    const { rows } = await this.#run(this.#sql.acquireLease, [key, owner, ttl], key, "lease");
    return rows.length > 0;
  }

  /** One `UPDATE` of an owned, unexpired lease. */
  async renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    const { rows } = await this.#run(this.#sql.renewLease, [key, owner, ttl], key, "lease");
    return rows.length > 0;
  }

  /** One `DELETE` of an owned lease. */
  async releaseLease(key: string, owner: string): Promise<void> {
    await this.#run(this.#sql.releaseLease, [key, owner], key, "lease");
  }

  /**
   * One statement: the lease upsert and then the read, through the
   * function of `TableNames.leaseRead` (each with a snapshot of its own);
   * a second one to renew or clear the expiry when due, as in
   * {@link PostgresDriver.read}. Tables made by an earlier version get the
   * function on first use; where it cannot be created (`createTable:
   * false`, no rights), the lease is taken and the session read in two
   * statements.
   */
  async acquireLeaseAndRead(
    key: string,
    owner: string,
    ttl: number,
  ): Promise<StoredRecord<string> | undefined | false> {
    const rows = await this.#leaseAndRead(key, owner, ttl);
    if (rows === undefined) {
      if (!(await this.acquireLease(key, owner, ttl))) return false;
      return await this.read(key);
    }
    if (rows.length === 0) return false;
    const version = rows[0].version as string | null;
    if (version === null) return undefined;
    const record = { payload: rows[0].value as string, version };
    if (rows[0].due !== true) return record;
    const touched = await this.#run(this.#sql.touch, this.#params(key, version), key);
    // Replaced, or expired and perhaps purged since: read again, as `read` does.
    return touched.rowCount ? record : await this.read(key);
  }

  /** The rows of the one-statement locked read, or `undefined` without its function. */
  async #leaseAndRead(
    key: string,
    owner: string,
    ttl: number,
  ): Promise<Record<string, unknown>[] | undefined> {
    const values = this.#params(key, owner, ttl);
    const run = () => this.#run(this.#sql.acquireLeaseAndRead, values, key, "both");
    return (await this.#call("leaseRead", run))?.rows;
  }

  /**
   * Runs `run`, a statement calling the function `fn`; `undefined` when the
   * function is missing and cannot be created ({@link NO_FUNCTION}: the
   * statement did nothing). Tables made by an earlier version, or by hand
   * from its createTableSql(), get the functions on first use.
   */
  async #call<R>(fn: LockedFunction, run: () => Promise<R>): Promise<R | undefined> {
    if (!(await this.#named())) return undefined;
    const known = this.#functions[fn];
    if (known !== undefined && !(await known)) return undefined;
    if (known === undefined && Date.now() < this.#notBefore) return undefined;
    try {
      return await run();
    } catch (err) {
      if (!this.#unusable(err)) throw err;
    }
    // Missing now, even if it was there before (dropped since): created
    // again, one attempt shared by the calls that find it missing meanwhile.
    const pending = this.#functions[fn];
    const creating = pending instanceof Promise
      ? pending
      : (this.#functions[fn] = this.#createFunctions(fn).then((ok) => {
        if (ok === undefined) this.#notBefore = Date.now() + FUNCTION_RETRY_MS;
        return (this.#functions[fn] = ok);
      }));
    if (!(await creating)) return undefined;
    try {
      return await run();
    } catch (err) {
      const code = sqlState(err);
      if (!this.#unusable(err)) throw err;
      // Dropped again right after it was made: the next call tries again.
      // Ambiguous or not granted: making it again does not help.
      this.#functions[fn] = code === "42883" ? undefined : false;
      return undefined;
    }
  }

  /**
   * Whether the functions may be called: for a storage given `schema`,
   * only once their bodies are known to name its tables. Functions made by
   * a storage without `schema` name them without it and find them along
   * the caller's search path, where tables of the same name in another
   * schema (`public`) would take their place without an error (attack35
   * S1b): those are replaced by this storage's own, or, where it may not
   * replace them, not used.
   */
  #named(): Promise<boolean | undefined> | boolean {
    const check = this.#sql.functionBodies;
    if (check === undefined || this.#bodies === true) return true;
    if (this.#bodies === false) return false;
    if (this.#bodies === undefined && Date.now() < this.#notBefore) return false;
    return this.#bodies ??= (async () => {
      try {
        if ((await this.#run(check.text, check.values)).rows[0]?.named !== false) return true;
        const made = await this.#createFunctions("leaseRead");
        if (made === undefined) this.#notBefore = Date.now() + FUNCTION_RETRY_MS;
        return made;
      } catch (err) {
        this.#bodies = undefined;
        throw err;
      }
    })().then((named) => (this.#bodies = named));
  }

  /**
   * Whether a call of a function failed because the function cannot be
   * used ({@link NO_FUNCTION}); for a storage given `schema`, also a table
   * missing (42P01) in the body of a function made by a storage without
   * it, which the runner could not replace (another role owns it).
   */
  #unusable(err: unknown): boolean {
    const code = sqlState(err);
    return NO_FUNCTION.has(code) || (code === "42P01" && this.#sql.schemaNamed);
  }

  /**
   * Creates the functions of the locked calls; whether they are there now:
   * `false` for good (no rights), `undefined` when the next call should try
   * again (see `Runner.create`).
   */
  async #createFunctions(fn: LockedFunction): Promise<boolean | undefined> {
    if (!this.#createTable) return false;
    try {
      return await this.#runner.create("both");
    } catch (err) {
      // The runner passes connection errors on as they are: the server was
      // not asked, so the next locked call asks again.
      if (!(err instanceof SessionError)) {
        this.#functions[fn] = undefined;
        throw err;
      }
      // A table could not be made: the statement without the function
      // fails on it too, and says so; the next locked call tries again.
      return undefined;
    }
  }

  /**
   * One statement: while `owner` holds an unexpired lease, the write (as
   * {@link PostgresDriver.write}) or delete (as {@link PostgresDriver.delete})
   * and, if it was done, the release of the lease.
   */
  saveAndReleaseLease(
    key: string,
    payload: string | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return this.#lockedSave(key, payload, expected, owner, true);
  }

  /**
   * As {@link PostgresDriver.saveAndReleaseLease}, keeping the lease: the
   * same statement without the release (and never through the function,
   * which releases).
   */
  saveKeepingLease(
    key: string,
    payload: string | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return this.#lockedSave(key, payload, expected, owner, false);
  }

  async #lockedSave(
    key: string,
    payload: string | undefined,
    expected: string | null | undefined,
    owner: string,
    release: boolean,
  ): Promise<LockedSave> {
    const sql = release ? this.#sql : this.#sql.keep;
    // A token that is no version matches no row: NULL compares with none.
    const stored = expected === undefined || expected === null || isVersion(expected)
      ? expected
      : undefined;
    const impossible = expected !== stored;
    let version: string | null = null;
    let result: PostgresQueryResult;
    if (payload === undefined) {
      const [text, values] = expected === undefined
        ? [sql.saveDelete, [key, owner]]
        : expected === null
        ? [sql.saveDeleteIfAbsent, [key, owner]]
        : [sql.saveDeleteIfVersion, [key, owner, impossible ? null : expected]];
      result = await this.#run(text, values, key, "both");
    } else {
      if (this.#jsonb && JSONB_UNSAFE.test(payload)) throw this.#refusal(key);
      version = newVersion();
      const [text, values] = expected === undefined
        ? [sql.saveWrite, this.#params(key, owner, payload, version)]
        : expected === null
        ? [sql.saveIfAbsent, this.#params(key, owner, payload, version)]
        : [
          sql.saveIfVersion,
          this.#params(key, owner, payload, impossible ? null : expected, version),
        ];
      try {
        // The most common locked save, through its function where it can.
        const call = release && typeof expected === "string" && !impossible
          ? await this.#call("saveRelease", () =>
            this.#run(
              this.#sql.saveIfVersionCall,
              [key, owner, payload, expected, version, this.#ttl ?? null],
              key,
              "both",
            ))
          : undefined;
        result = call ?? await this.#run(text, values, key, "both");
      } catch (err) {
        throw this.#refused(key, err);
      }
    }
    const row = result.rows[0];
    if (row?.leased !== true) return { saved: false, reason: "lease" };
    if (row.done !== true) return { saved: false, reason: "conflict" };
    if (payload !== undefined) await this.#maybePurge();
    return { saved: true, version };
  }

  /** Deletes up to `limit` expired rows; returns how many went. */
  async purge(limit: number): Promise<number> {
    return (await this.#run(this.#sql.purge, [limit])).rowCount ?? 0;
  }

  /**
   * A purge batch on the first write and every hundredth after it, also
   * without a TTL: rows an earlier configuration left to expire go as well.
   */
  async #maybePurge(): Promise<void> {
    if (!this.#purging.due()) return;
    try {
      await this.purge(PURGE_BATCH);
    } catch {
      // Housekeeping: the write itself succeeded, and expired rows are
      // invisible anyway. The next batch tries again.
    }
  }

  /** Ends an adopted pool, once. */
  close(): Promise<void> {
    if (this.#owned === undefined) return Promise.resolve();
    this.#closed ??= this.#owned.end();
    return this.#closed;
  }
}
