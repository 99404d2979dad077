/**
 * The SQLite driver behind `SqliteStorage`: each session is one row of the
 * session table, each lease one row of the lease table.
 *
 * | call                      | statements                                               |
 * | ------------------------- | -------------------------------------------------------- |
 * | read                      | `SELECT`; an `UPDATE` of `expires_at` only when needed    |
 * | write                     | one upsert (`INSERT ... ON CONFLICT DO UPDATE`)          |
 * | conditional write         | one `INSERT ... ON CONFLICT DO UPDATE ... WHERE`, or `UPDATE ... WHERE version = ?` |
 * | delete, conditional       | one `DELETE` (`... WHERE version = ?`)                   |
 * | has                       | one `SELECT`                                             |
 * | listing page              | one `SELECT ... WHERE key > ? ORDER BY key LIMIT ?`       |
 * | acquire, renew, release   | one statement on the lease table                         |
 * | locked save               | in a savepoint: `DELETE` of our live lease, then the write |
 *
 * Every change is a single statement, which SQLite runs atomically, but
 * the locked save: it gives the lease up and writes in one savepoint, so
 * that nobody can take the lease between the check and the write. Its
 * first statement writes, so it takes the write lock at once (waiting for
 * the busy timeout) and never runs into the lock upgrade of a deferred
 * transaction (`SQLITE_BUSY` without waiting). The read's second statement
 * only sets the expiry of the version it read, so it never undoes a write
 * that came in between.
 *
 * @module
 */

import { PURGE_BATCH, PurgeSchedule } from "../shared/purging.ts";
import { SessionError } from "../../src/errors.ts";
import type { LockedSave } from "../../src/capabilities.ts";
import type { KeyRules, ScanPage, SessionDriver, StoredRecord } from "../shared/driver.ts";
import {
  changes,
  integer,
  isBusy,
  isNoTable,
  type Row,
  type SqliteDatabase,
  type SqliteStatement,
  type SqliteValue,
  withObjectRows,
} from "./database.ts";
import { expiryOfRead, expiryOfWrite } from "../shared/expiry.ts";
import { encodingOf, listedKey, payloadOf, type TextEncoding } from "./rows.ts";
import { buildSql, COLUMNS, type SqliteSql, TABLE_INFO } from "./sql.ts";
import { newVersion } from "./versions.ts";

/**
 * Keys are bound as UTF-8 text: a lone surrogate would become U+FFFD (two
 * keys, one row), and `node:sqlite` cuts text read back at a NUL.
 */
const KEYS: KeyRules = { wellFormed: true, noNul: true };

/** Rows per listing page with values (sessions may be large). */
const ENTRY_PAGE = 100;

/** The driver's settings, checked by `SqliteStorage`. */
export interface SqliteDriverOptions {
  table: string;
  leaseTable: string;
  ttl: number | undefined;
  /** Set this busy timeout; `undefined`: 5000 ms unless the handle has one. */
  busyTimeout: number | undefined;
}

/** The savepoint of the locked save. */
const SAVEPOINT = "sessionkit_locked_save";

/** The busy timeout set when neither the options nor the handle give one. */
export const DEFAULT_BUSY_TIMEOUT = 5000;

type Statements = { [K in Exclude<keyof SqliteSql, "create">]: SqliteStatement };

/** Sessions as rows of a SQLite table, through a synchronous handle. */
export class SqliteDriver implements SessionDriver<string> {
  readonly name = "SqliteStorage";
  /** Every write draws a new version. */
  readonly uniqueVersions = true;
  readonly keys: KeyRules = KEYS;
  readonly #db: SqliteDatabase;
  readonly #options: SqliteDriverOptions;
  readonly #sql: SqliteSql;
  #statements: Statements | undefined;
  /** The busy timeout in force since setup, in ms. */
  #timeout = 0;
  /** The database's text encoding, read at setup. */
  #encoding: TextEncoding = "UTF-8";
  readonly #purging = new PurgeSchedule();

  /** A driver over `db`; nothing runs until the first call. */
  constructor(db: SqliteDatabase, options: SqliteDriverOptions) {
    this.#db = db;
    this.#options = options;
    this.#sql = buildSql(options.table, options.leaseTable);
  }

  read(key: string): StoredRecord<string> | undefined {
    return this.#call(key, (s) => {
      const now = Date.now();
      const row = s.read.get(key, now) as Row | undefined;
      if (row === undefined) return undefined;
      const version = String(row.version);
      // With a TTL: renew once less than a TTL is left (the shared rule).
      // Without: clear an expiry an earlier configuration left. Only on the
      // version read, so a write in between is never touched.
      const expires = expiryOfRead(this.#options.ttl, integer(row.expires_at), now);
      if (expires !== undefined) s.touch.run(bounded(expires), key, version, now);
      return { payload: payloadOf(row.value, key, this.#options.table), version };
    });
  }

  write(key: string, payload: string, expected: string | null | undefined): string | null {
    return this.#call(key, (s) => this.#write(s, key, payload, expected));
  }

  #write(
    s: Statements,
    key: string,
    payload: string,
    expected: string | null | undefined,
  ): string | null {
    const now = Date.now();
    const version = newVersion();
    const expires = bounded(expiryOfWrite(this.#options.ttl, now));
    let landed: boolean;
    if (expected === undefined) {
      s.write.run(key, payload, version, expires);
      landed = true;
    } else if (expected === null) {
      landed = changes(s.insert.run(key, payload, version, expires, now)) > 0;
    } else {
      landed = changes(s.update.run(payload, version, expires, key, expected, now)) > 0;
    }
    if (!landed) return null;
    this.#maybePurge(now);
    return version;
  }

  delete(key: string, expected: string | null | undefined): boolean {
    return this.#call(key, (s) => this.#delete(s, key, expected));
  }

  #delete(s: Statements, key: string, expected: string | null | undefined): boolean {
    if (expected === undefined) {
      s.delete.run(key);
      return true;
    }
    const now = Date.now();
    // "Nothing stored" holds when no live row exists; an expired one is nothing.
    if (expected === null) return s.has.get(key, now) === undefined;
    return changes(s.deleteVersion.run(key, expected, now)) > 0;
  }

  /**
   * While `owner` holds an unexpired lease of `key`, writes (or, for
   * `undefined`, deletes) under `expected` and gives the lease up, as one
   * step: in a savepoint that first drops the live lease (which takes the
   * write lock), then writes; a lease not held, or a conflict, rolls the
   * savepoint back, so a conflict keeps the lease.
   */
  saveAndReleaseLease(
    key: string,
    payload: string | undefined,
    expected: string | null | undefined,
    owner: string,
  ): LockedSave {
    return this.#lockedSave(key, payload, expected, owner, true);
  }

  /**
   * As {@link SqliteDriver.saveAndReleaseLease}, keeping the lease: the
   * savepoint's first statement is an update of the live lease that
   * changes nothing (it takes the write lock and counts the lease).
   */
  saveKeepingLease(
    key: string,
    payload: string | undefined,
    expected: string | null | undefined,
    owner: string,
  ): LockedSave {
    return this.#lockedSave(key, payload, expected, owner, false);
  }

  #lockedSave(
    key: string,
    payload: string | undefined,
    expected: string | null | undefined,
    owner: string,
    release: boolean,
  ): LockedSave {
    return this.#call(key, (s) => {
      const db = this.#db;
      db.exec(`SAVEPOINT ${SAVEPOINT}`);
      let result: LockedSave;
      try {
        const lease = release ? s.releaseLiveLease : s.holdLiveLease;
        if (changes(lease.run(key, owner, Date.now())) === 0) {
          result = { saved: false, reason: "lease" };
        } else {
          const version = payload === undefined
            ? (this.#delete(s, key, expected) ? null : false)
            : this.#write(s, key, payload, expected) ?? false;
          result = version === false
            ? { saved: false, reason: "conflict" }
            : { saved: true, version };
        }
      } catch (err) {
        this.#abandonSavepoint();
        throw err;
      }
      if (!result.saved) {
        this.#abandonSavepoint(); // nothing changed, the lease kept
        return result;
      }
      try {
        db.exec(`RELEASE ${SAVEPOINT}`);
      } catch (err) {
        // The outermost savepoint's RELEASE is the commit. Refused (busy:
        // a reader holds the database in rollback-journal mode), it leaves
        // the transaction open, and every later statement on the handle in
        // it: undo all of it, then report.
        this.#abandonSavepoint();
        throw err;
      }
      return result;
    });
  }

  /**
   * Undoes the locked save's savepoint and ends it. Where ending it is
   * refused too (the empty commit of the outermost transaction), the
   * transaction it began is rolled back, so nothing is left open.
   */
  #abandonSavepoint(): void {
    const db = this.#db;
    try {
      db.exec(`ROLLBACK TO ${SAVEPOINT}`);
      db.exec(`RELEASE ${SAVEPOINT}`);
    } catch {
      try {
        db.exec("ROLLBACK");
      } catch {
        // No transaction is open any more.
      }
    }
  }

  has(key: string): boolean {
    return this.#call(key, (s) => s.has.get(key, Date.now()) !== undefined);
  }

  scan(cursor: string | undefined, limit: number, values: boolean): ScanPage<string> {
    return this.#call(undefined, (s) => {
      const size = values ? Math.min(limit, ENTRY_PAGE) : limit;
      const now = Date.now();
      const params: SqliteValue[] = cursor === undefined ? [now, size] : [cursor, now, size];
      const statement = values
        ? (cursor === undefined ? s.firstEntries : s.nextEntries)
        : (cursor === undefined ? s.firstKeys : s.nextKeys);
      const rows = statement.all(...params) as Row[];
      // Every key is checked to be exactly the stored text, so the last one
      // is an exact cursor: the next page starts right after it.
      const table = this.#options.table;
      const keys = rows.map((row) => listedKey(row, table, this.#encoding));
      const page: ScanPage<string> = {
        keys,
        cursor: rows.length < size ? undefined : keys[keys.length - 1],
      };
      if (values) page.payloads = rows.map((row, i) => payloadOf(row.value, keys[i], table));
      return page;
    });
  }

  acquireLease(key: string, owner: string, ttl: number): boolean {
    return this.#call(key, (s) => {
      const now = Date.now();
      return changes(s.acquireLease.run(key, owner, leaseEnd(now, ttl), now)) > 0;
    });
  }

  renewLease(key: string, owner: string, ttl: number): boolean {
    return this.#call(key, (s) => {
      const now = Date.now();
      return changes(s.renewLease.run(leaseEnd(now, ttl), key, owner, now)) > 0;
    });
  }

  releaseLease(key: string, owner: string): void {
    this.#call(key, (s) => void s.releaseLease.run(key, owner));
  }

  /** Deletes up to `limit` expired sessions and expired leases; the sessions deleted. */
  purge(limit: number): number {
    return this.#call(undefined, (s) => {
      const now = Date.now();
      s.purgeLeases.run(now, limit);
      return changes(s.purge.run(now, limit));
    });
  }

  /** A purge batch on the first write and then every `PURGE_EVERY` writes (shared/purging.ts). */
  #maybePurge(now: number): void {
    if (!this.#purging.due()) return;
    const s = this.#statements!;
    try {
      s.purgeLeases.run(now, PURGE_BATCH);
      s.purge.run(now, PURGE_BATCH);
    } catch {
      // Housekeeping: the write itself landed, and expired rows are never
      // returned. The next write tries again.
      this.#purging.again();
    }
  }

  /**
   * Runs `body` on the prepared statements, creating the tables first if
   * needed. A table dropped behind the storage's back is created again once;
   * a lock held longer than the busy timeout becomes an error that says so.
   */
  #call<R>(key: string | undefined, body: (s: Statements) => R): R {
    try {
      try {
        return body(this.#prepared());
      } catch (err) {
        if (!isNoTable(err)) throw err;
        this.#statements = undefined;
        return body(this.#prepared());
      }
    } catch (err) {
      if (!isBusy(err)) throw err;
      throw new SessionError(
        `SqliteStorage: the database stayed locked by another connection for longer than the ` +
          `busy timeout (${this.#timeout} ms), so the operation was given up. Keep write ` +
          `transactions on this database short, switch it to WAL mode ` +
          `(db.exec("PRAGMA journal_mode = WAL")), or raise the busyTimeout option.`,
        key,
        { cause: err },
      );
    }
  }

  /** The handle's busy timeout in ms (`PRAGMA busy_timeout`). */
  #busyTimeout(): number {
    const row = withObjectRows(this.#db.prepare("PRAGMA busy_timeout")).get() as Row | undefined;
    return integer(row?.timeout) ?? 0;
  }

  /** Sets the busy timeout, creates the tables and prepares the statements, once. */
  #prepared(): Statements {
    if (this.#statements !== undefined) return this.#statements;
    const db = this.#db;
    const wanted = this.#options.busyTimeout ??
      (this.#busyTimeout() === 0 ? DEFAULT_BUSY_TIMEOUT : undefined);
    if (wanted !== undefined) db.exec(`PRAGMA busy_timeout = ${wanted}`);
    this.#timeout = this.#busyTimeout();
    this.#encoding = encodingOf(withObjectRows(db.prepare("PRAGMA encoding")).get() as Row);
    const statements = {} as Statements;
    try {
      for (const ddl of this.#sql.create) db.exec(ddl);
      this.#checkTables();
      for (const [name, text] of Object.entries(this.#sql)) {
        if (name === "create") continue;
        statements[name as keyof Statements] = withObjectRows(db.prepare(text as string));
      }
    } catch (err) {
      if (err instanceof SessionError) throw err;
      const message = String((err as Error)?.message);
      if (!/no such column|has no column|ON CONFLICT clause does not match/.test(message)) {
        throw err;
      }
      throw new SessionError(
        `SqliteStorage: the table ${JSON.stringify(this.#options.table)} or ` +
          `${JSON.stringify(this.#options.leaseTable)} exists but is not a sessionkit table ` +
          `(${message}). Give the storage another table name, or drop that table.`,
        undefined,
        { cause: err },
      );
    }
    this.#statements = statements;
    return statements;
  }

  /**
   * Refuses a session or lease table that exists with another layout (made
   * by something else): it needs sessionkit's columns, with `key` alone as
   * the primary key, for the upserts and the keyset listing.
   */
  #checkTables(): void {
    const info = withObjectRows(this.#db.prepare(TABLE_INFO));
    const tables: [string, readonly string[]][] = [
      [this.#options.table, COLUMNS.sessions],
      [this.#options.leaseTable, COLUMNS.leases],
    ];
    for (const [table, columns] of tables) {
      const rows = info.all(table) as Row[];
      const names = new Set(rows.map((row) => String(row.name).toLowerCase()));
      const keys = rows.filter((row) => Number(row.pk) > 0).map((row) => String(row.name));
      const missing = columns.filter((column) => !names.has(column));
      let problem: string | undefined;
      if (missing.length > 0) {
        problem = `it has no column ${missing.map((c) => JSON.stringify(c)).join(", ")}`;
      } else if (keys.length !== 1 || keys[0].toLowerCase() !== "key") {
        problem = keys.length === 0
          ? `it has no primary key; sessionkit's is "key"`
          : `its primary key is ${keys.map((c) => JSON.stringify(c)).join(", ")}, not "key"`;
      }
      if (problem === undefined) continue;
      throw new SessionError(
        `SqliteStorage: the table ${JSON.stringify(table)} exists but is not a sessionkit ` +
          `table (${problem}). Give the storage another table name (the table option), or ` +
          `drop that table.`,
      );
    }
  }
}

/** When a lease taken now for `ttl` ms ends. */
function leaseEnd(now: number, ttl: number): number {
  return Math.min(Math.ceil(now + ttl), Number.MAX_SAFE_INTEGER);
}

/** An expiry as a whole number of ms that SQLite stores as an INTEGER. */
function bounded(expires: number | null): number | null {
  return expires === null ? null : Math.min(Math.ceil(expires), Number.MAX_SAFE_INTEGER);
}
