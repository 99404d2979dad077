/**
 * The MySQL/MariaDB driver behind `MysqlStorage`: each session is one row of
 * the session table, leases are rows of a lease table of their own.
 *
 * | call                   | statements (each one round trip)                              |
 * | ---------------------- | ------------------------------------------------------------- |
 * | read                   | `SELECT`; plus an `UPDATE` of the expiry when it is due        |
 * | write                  | `INSERT ... ON DUPLICATE KEY UPDATE`                           |
 * | write if version       | `UPDATE ... WHERE version = ?`                                 |
 * | write if nothing there | `INSERT`; on a duplicate key, `UPDATE` of an expired row       |
 * | delete (if version)    | `DELETE` (`... WHERE version = ?`)                             |
 * | has, delete if absent  | `SELECT 1`                                                     |
 * | listing page           | `SELECT ... WHERE key > ? ORDER BY key LIMIT ?` (key bytes)    |
 * | acquire lease          | `INSERT`; on a duplicate key, `UPDATE` of an expired/own lease |
 * | renew, release lease   | `UPDATE`, `DELETE`                                             |
 * | locked save            | the write, checking the lease in it; then the release (unless  |
 * |                        | another update of the key still runs here: the lease is kept)  |
 *
 * The expiry `UPDATE` of a read changes neither value nor version and only
 * touches the version it read. Every statement stands alone (autocommit), so
 * no lock is held between statements; one that InnoDB rolls back as a
 * deadlock victim or after a lock wait timeout is sent again.
 *
 * @module
 */

import { PURGE_BATCH, PurgeSchedule } from "../shared/purging.ts";
import { Buffer } from "node:buffer";
import { SessionError } from "../../src/errors.ts";
import type { KeyRules, ScanPage, SessionDriver, StoredRecord } from "../shared/driver.ts";
import type { LockedSave } from "../../src/capabilities.ts";
import {
  affectedOf,
  bytesOf,
  ER,
  errnoOf,
  exactTextOf,
  type MysqlParameter,
  type MysqlQueryable,
  rowsOf,
  textOf,
} from "./client.ts";
import { type Expiry, expiryOf, micros } from "./expiry.ts";
import { MAX_KEY_BYTES, MAX_KEY_REASON, MAX_OWNER_BYTES, maxValueBytes } from "./limits.ts";
import { escapeId } from "./names.ts";
import { buildStatements, createTableSql, type Statements } from "./sql.ts";
import { isVersion, newVersion } from "../shared/bigint_versions.ts";

/** Keys are bytes of well-formed UTF-8 (NUL is fine), within the index limit. */
const KEYS: KeyRules = {
  wellFormed: true,
  maxBytes: MAX_KEY_BYTES,
  maxBytesReason: MAX_KEY_REASON,
};

/** Sessions fetched per page when listing values. */
const VALUE_PAGE = 50;
/** How often a statement rolled back by a deadlock or lock timeout is sent again. */
const RETRIES = 5;

/** The driver's settings, checked by `MysqlStorage`. */
export interface DriverOptions {
  /** The session table. */
  table: string;
  /** The lease table. */
  leaseTable: string;
  /** Time to live in ms, or `undefined`. */
  ttl: number | undefined;
  /** Whether to create the tables. */
  createTable: boolean;
}

/** Which table a statement needs. */
type Table = "sessions" | "leases";

/** The tables a locked save's statements need. */
const BOTH: readonly Table[] = ["sessions", "leases"];

/** Sessions as rows of a MySQL/MariaDB table, through `db`. */
export class MysqlDriver implements SessionDriver<string> {
  readonly name = "MysqlStorage";
  /** Every write draws a new version. */
  readonly uniqueVersions = true;
  readonly keys: KeyRules = KEYS;
  readonly #db: MysqlQueryable;
  readonly #options: DriverOptions;
  readonly #sql: Statements;
  readonly #expiry: Expiry | undefined;
  readonly #ready: Record<Table, Promise<void> | undefined> = {
    sessions: undefined,
    leases: undefined,
  };
  readonly #done: Record<Table, boolean> = { sessions: false, leases: false };
  /** The longest JSON text the server takes, known once the session table is ready. */
  #maxValue = Infinity;
  #packet = 0;
  readonly #purging = new PurgeSchedule();
  #close: (() => Promise<void>) | undefined;
  #closed: Promise<void> | undefined;

  /** A driver over `db` with checked `options`. */
  constructor(db: MysqlQueryable, options: DriverOptions) {
    this.#db = db;
    this.#options = options;
    this.#expiry = expiryOf(options.ttl);
    this.#sql = buildStatements(options.table, options.leaseTable, options.ttl !== undefined);
  }

  /** Makes {@link MysqlDriver.close} end the pool with `close`. */
  own(close: () => Promise<void>): void {
    this.#close = close;
  }

  async read(key: string): Promise<StoredRecord<string> | undefined> {
    const k = Buffer.from(key);
    const e = this.#expiry;
    // Renewing (or clearing) the expiry is a second statement, only when due.
    // If it changes nothing (the version replaced, or expired and perhaps
    // purged since the SELECT, or renewed in the same millisecond), the
    // session is read again, once: what a read hands out is live for at
    // least a TTL, or nothing.
    for (let attempt = 0; attempt < 2; attempt++) {
      const rows = rowsOf(await this.#run("sessions", this.#sql.read, e ? [e.threshold, k] : [k]));
      if (rows.length === 0) return undefined;
      const [value, version, stale] = rows[0];
      const record = { payload: textOf(value), version: String(version) };
      if (Number(stale) === 0) return record;
      const params = e ? [e.lifetime, k, record.version] : [k, record.version];
      if (affectedOf(await this.#run("sessions", this.#sql.touch, params)) > 0) return record;
    }
    return undefined;
  }

  async write(
    key: string,
    payload: string,
    expected: string | null | undefined,
  ): Promise<string | null> {
    const k = Buffer.from(key);
    // The size limit is known once the session table is ready.
    if (!this.#done.sessions) await this.#ensure("sessions");
    const value = this.#value(key, payload);
    const version = newVersion();
    const life = this.#expiry ? [this.#expiry.lifetime] : [];
    let written: boolean;
    if (expected === undefined) {
      await this.#run("sessions", this.#sql.write, [k, value, version, ...life]);
      written = true;
    } else if (expected === null) {
      written = await this.#insertOrTake(
        () => this.#run("sessions", this.#sql.insert, [k, value, version, ...life]),
        () => this.#run("sessions", this.#sql.replaceExpired, [value, version, ...life, k]),
      );
    } else {
      if (!isVersion(expected)) return null;
      const params = [value, version, ...life, k, expected];
      written = affectedOf(await this.#run("sessions", this.#sql.update, params)) > 0;
    }
    if (!written) return null;
    await this.#maybePurge();
    return version;
  }

  /**
   * Inserts a row; if one exists, takes it over where allowed (an expired
   * session, an expired or own lease). If that finds nothing to take, the row
   * may have gone in between (purged, released), so the insert is tried once
   * more before giving up.
   */
  async #insertOrTake(
    insert: () => Promise<unknown>,
    take: () => Promise<unknown>,
  ): Promise<boolean> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await insert();
        return true;
      } catch (err) {
        if (errnoOf(err) !== ER.DUP_ENTRY) throw err;
      }
      if (attempt === 0 && affectedOf(await take()) > 0) return true;
    }
    return false;
  }

  async delete(key: string, expected: string | null | undefined): Promise<boolean> {
    const k = Buffer.from(key);
    if (expected === undefined) {
      await this.#run("sessions", this.#sql.delete, [k]);
      return true;
    }
    if (expected === null) return !(await this.has(key));
    if (!isVersion(expected)) return false;
    return affectedOf(await this.#run("sessions", this.#sql.deleteVersion, [k, expected])) > 0;
  }

  async has(key: string): Promise<boolean> {
    return rowsOf(await this.#run("sessions", this.#sql.has, [Buffer.from(key)])).length > 0;
  }

  async scan(
    cursor: string | undefined,
    limit: number,
    values: boolean,
  ): Promise<ScanPage<string>> {
    const size = values ? Math.min(limit, VALUE_PAGE) : limit;
    const sql = this.#sql;
    const statement = cursor === undefined
      ? (values ? sql.firstEntries : sql.firstKeys)
      : (values ? sql.nextEntries : sql.nextKeys);
    // The cursor is the hex of the last key's stored bytes, so the next page
    // starts exactly after it, whatever those bytes are.
    const after = cursor === undefined ? [] : [Buffer.from(cursor, "hex")];
    const rows = rowsOf(await this.#run("sessions", statement, [...after, String(size)]));
    const raw = rows.map((row) => bytesOf(row[0]));
    const keys = raw.map((bytes) => exactTextOf(bytes) ?? this.#foreign(bytes));
    const last = raw[raw.length - 1];
    const page: ScanPage<string> = {
      keys,
      cursor: rows.length < size ? undefined : Buffer.from(last).toString("hex"),
    };
    if (values) page.payloads = rows.map((row) => textOf(row[1]));
    return page;
  }

  /** The error for a row whose key bytes sessionkit cannot have written. */
  #foreign(bytes: Uint8Array): never {
    const t = escapeId(this.#options.table);
    const hex = Buffer.from(bytes).toString("hex").toUpperCase();
    const shown = hex.length > 64 ? `${hex.slice(0, 64)}…` : hex;
    throw new SessionError(
      `MysqlStorage: the table ${t} holds a row whose key is not UTF-8 (bytes ${shown}), so ` +
        `sessionkit did not write it and cannot list it. Delete the rows sessionkit did not ` +
        `write (such as DELETE FROM ${t} WHERE \`key\` = X'${hex}'), or give this storage ` +
        `a table of its own (the table option).`,
    );
  }

  async acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    const k = Buffer.from(key);
    const o = this.#owner(owner);
    const t = micros(ttl);
    return await this.#insertOrTake(
      () => this.#run("leases", this.#sql.insertLease, [k, o, t]),
      () => this.#run("leases", this.#sql.takeLease, [o, t, k, o]),
    );
  }

  /**
   * While `owner` holds an unexpired lease of `key`, writes (or, for
   * `undefined`, deletes) under `expected` and then gives the lease up. The
   * write is one statement that checks the lease itself and holds a shared
   * lock on its row until the write is in, so a process taking the lease
   * over waits for it; the release follows as a second statement.
   */
  saveAndReleaseLease(
    key: string,
    payload: string | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return this.#lockedSave(key, payload, expected, owner, true);
  }

  /** As {@link MysqlDriver.saveAndReleaseLease}, keeping the lease (no second statement). */
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
    const k = Buffer.from(key);
    const o = this.#owner(owner);
    const version = payload === undefined
      ? (await this.#lockedDelete(k, expected, o) ? null : false)
      : await this.#lockedWrite(key, k, payload, expected, o);
    if (version === false) {
      // Our own lease cannot come back once it ran out, so one held now was
      // held when the write was refused: the version did not match.
      const held = rowsOf(await this.#run(BOTH, this.#sql.holdsLease, [k, o])).length > 0;
      return { saved: false, reason: held ? "conflict" : "lease" };
    }
    if (release) {
      try {
        await this.#run("leases", this.#sql.releaseLease, [k, o]);
      } catch {
        // The session is saved; a lease not given up expires by itself.
      }
    }
    if (payload !== undefined) await this.#maybePurge();
    return { saved: true, version };
  }

  /** A locked write: the new version, or `false` if the lease or the condition failed. */
  async #lockedWrite(
    key: string,
    k: Buffer,
    payload: string,
    expected: string | null | undefined,
    o: Buffer,
  ): Promise<string | false> {
    if (!this.#done.sessions) await this.#ensure("sessions");
    const value = this.#value(key, payload);
    const version = newVersion();
    const life = this.#expiry ? [this.#expiry.lifetime] : [];
    const sql = this.#sql.locked;
    let written: boolean;
    if (expected === undefined) {
      written =
        affectedOf(await this.#run(BOTH, sql.write, [k, value, version, ...life, k, o])) > 0;
    } else if (expected === null) {
      written = false;
      for (let attempt = 0; attempt < 2 && !written; attempt++) {
        try {
          // No row selected: the lease is not held.
          const params = [k, value, version, ...life, k, o];
          if (affectedOf(await this.#run(BOTH, sql.insert, params)) === 0) return false;
          written = true;
        } catch (err) {
          if (errnoOf(err) !== ER.DUP_ENTRY) throw err;
          // A row exists: take it if it expired; if that finds none, it may
          // have gone in between, so the insert is tried once more.
          if (attempt > 0) break;
          const params = [value, version, ...life, k, k, o];
          written = affectedOf(await this.#run(BOTH, sql.replaceExpired, params)) > 0;
        }
      }
    } else {
      if (!isVersion(expected)) return false;
      const params = [value, version, ...life, k, expected, k, o];
      written = affectedOf(await this.#run(BOTH, sql.update, params)) > 0;
    }
    return written ? version : false;
  }

  /** A locked delete: whether it was done (`false`: the lease or the condition failed). */
  async #lockedDelete(
    k: Buffer,
    expected: string | null | undefined,
    o: Buffer,
  ): Promise<boolean> {
    const sql = this.#sql.locked;
    if (expected === null) {
      const [[held, live]] = rowsOf(await this.#run(BOTH, sql.absent, [k, o, k]));
      return Number(held) === 1 && Number(live) === 0;
    }
    if (expected === undefined) {
      // Nothing deleted: no session, or no lease (told apart by the caller).
      if (affectedOf(await this.#run(BOTH, sql.delete, [k, k, o])) > 0) return true;
      return rowsOf(await this.#run(BOTH, this.#sql.holdsLease, [k, o])).length > 0;
    }
    if (!isVersion(expected)) return false;
    return affectedOf(await this.#run(BOTH, sql.deleteVersion, [k, expected, k, o])) > 0;
  }

  async renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    const params = [micros(ttl), Buffer.from(key), this.#owner(owner)];
    return affectedOf(await this.#run("leases", this.#sql.renewLease, params)) > 0;
  }

  async releaseLease(key: string, owner: string): Promise<void> {
    await this.#run("leases", this.#sql.releaseLease, [Buffer.from(key), this.#owner(owner)]);
  }

  /** Deletes up to `limit` expired sessions; returns how many went. */
  async purge(limit: number): Promise<number> {
    return affectedOf(await this.#run("sessions", this.#sql.purge, [String(limit)]));
  }

  close(): Promise<void> {
    if (this.#close === undefined) return Promise.resolve();
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #maybePurge(): Promise<void> {
    if (!this.#purging.due()) return;
    try {
      await this.purge(PURGE_BATCH);
    } catch {
      // Housekeeping only: the write landed, and expired rows are invisible
      // anyway. The next batch tries again.
    }
  }

  /** The JSON text as UTF-8 bytes, refused if the server could not take it. */
  #value(key: string, payload: string): Buffer {
    const value = Buffer.from(payload);
    if (value.length > this.#maxValue) {
      throw new SessionError(
        `MysqlStorage: the session of key ${JSON.stringify(key)} is ${value.length} bytes of ` +
          `JSON, over this server's limit of ${this.#maxValue} bytes per session (its ` +
          `max_allowed_packet is ${this.#packet} bytes, and one statement must carry the ` +
          `whole session). Keep less in the session, or raise max_allowed_packet on the ` +
          `server (SET GLOBAL max_allowed_packet = ..., or in its configuration) and open the ` +
          `storage again. Nothing was written.`,
        key,
      );
    }
    return value;
  }

  #owner(owner: string): Buffer {
    const bytes = Buffer.from(owner);
    if (bytes.length > MAX_OWNER_BYTES) {
      throw new TypeError(
        `MysqlStorage: a lease owner is at most ${MAX_OWNER_BYTES} bytes (the owner column ` +
          `of the lease table), got ${bytes.length}. Use a shorter owner, such as a UUID.`,
      );
    }
    return bytes;
  }

  /**
   * Runs one statement once its table exists. A deadlock victim or a lock
   * wait timeout is sent again (InnoDB rolled the statement back as a
   * whole); a table dropped under a storage that creates its tables is
   * created again.
   */
  async #run(
    table: Table | readonly Table[],
    sql: string,
    params: MysqlParameter[],
  ): Promise<unknown> {
    const tables = typeof table === "string" ? [table] : table;
    let recreated = false;
    for (let attempt = 0;; attempt++) {
      for (const t of tables) if (!this.#done[t]) await this.#ensure(t);
      try {
        return await this.#db.execute({ sql, rowsAsArray: true }, params);
      } catch (err) {
        const errno = errnoOf(err);
        if ((errno === ER.LOCK_DEADLOCK || errno === ER.LOCK_WAIT_TIMEOUT) && attempt < RETRIES) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * (attempt + 1)));
          continue;
        }
        if (errno === ER.NO_SUCH_TABLE) {
          if (this.#options.createTable && !recreated) {
            recreated = true;
            for (const t of tables) {
              this.#done[t] = false;
              this.#ready[t] = undefined;
            }
            continue;
          }
          throw this.#missing(tables, err);
        }
        if (errno === ER.NET_PACKET_TOO_LARGE) {
          throw new SessionError(
            `MysqlStorage: the server refused a statement as larger than its ` +
              `max_allowed_packet. Raise max_allowed_packet on the server, or keep less in ` +
              `sessions.`,
            undefined,
            { cause: err },
          );
        }
        throw err;
      }
    }
  }

  #missing(tables: readonly Table[], err: unknown): SessionError {
    const names = tables.map((table) =>
      escapeId(table === "sessions" ? this.#options.table : this.#options.leaseTable)
    );
    const what = names.length === 1
      ? `the table ${names[0]} does not exist`
      : `one of the tables ${names.join(" and ")} does not exist`;
    return new SessionError(
      `MysqlStorage: ${what}. With createTable: false the tables must be ` +
        `created by hand: run the SQL from MysqlStorage.createTableSql() (see docs/mysql.md), ` +
        `or leave createTable on.`,
      undefined,
      { cause: err },
    );
  }

  #ensure(table: Table): Promise<void> {
    // A failed attempt is forgotten, so that the next operation tries again.
    this.#ready[table] ??= this.#setUp(table).then(
      () => void (this.#done[table] = true),
      (err) => {
        this.#ready[table] = undefined;
        if (err instanceof SessionError) throw err;
        const name = table === "sessions" ? this.#options.table : this.#options.leaseTable;
        throw new SessionError(
          `MysqlStorage: could not prepare the table ${escapeId(name)}: ` +
            `${(err as Error)?.message ?? err}. Check that the server is reachable and that the ` +
            `user may create tables in the database; or create the tables by hand ` +
            `(MysqlStorage.createTableSql()) and pass createTable: false.`,
          undefined,
          { cause: err },
        );
      },
    );
    return this.#ready[table];
  }

  async #setUp(table: Table): Promise<void> {
    const ddl = createTableSql(this.#options.table, this.#options.leaseTable);
    if (this.#options.createTable) {
      await this.#db.query({ sql: ddl[table], rowsAsArray: true });
    }
    if (table === "sessions") {
      const rows = rowsOf(
        await this.#db.query({
          sql: "SELECT LEAST(@@SESSION.max_allowed_packet, @@GLOBAL.max_allowed_packet)",
          rowsAsArray: true,
        }),
      );
      this.#packet = Number(rows[0][0]);
      this.#maxValue = maxValueBytes(this.#packet);
    }
  }
}
