/**
 * The SQL text of the SQLite storage. Table names are quoted as SQLite
 * identifiers (`"` doubled inside `"..."`), every value is a `?` parameter,
 * and every statement is a single statement, so each call is atomic on its
 * own (SQLite runs a statement outside a transaction as one).
 *
 * Times are milliseconds since the epoch, passed in by the caller (`now`),
 * so every process on the machine uses the same clock.
 *
 * @module
 */

/**
 * `name` as a quoted SQLite identifier.
 *
 * @example
 * ```ts
 * quoteIdentifier('my "odd" table'); // "\"my \"\"odd\"\" table\""
 * ```
 */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Throws a `RangeError` unless `name` can name a table: non-empty,
 * well-formed, no NUL, and not in SQLite's reserved `sqlite_` namespace.
 *
 * @example
 * ```ts
 * checkTableName("bot sessions"); // fine
 * ```
 */
export function checkTableName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0) {
    throw new RangeError(
      `SqliteStorage: the table name must be a non-empty string, got ${JSON.stringify(name)}.`,
    );
  }
  if (name.includes("\0") || !name.isWellFormed()) {
    throw new RangeError(
      `SqliteStorage: the table name ${JSON.stringify(name)} contains a NUL character or a ` +
        `lone surrogate, which SQLite names cannot hold. Choose another name.`,
    );
  }
  if (name.toLowerCase().startsWith("sqlite_")) {
    throw new RangeError(
      `SqliteStorage: the table name ${JSON.stringify(name)} starts with "sqlite_", which SQLite ` +
        `reserves for itself. Choose another name.`,
    );
  }
  return name;
}

/** The statements of one storage. `now` is always a parameter, never SQLite's clock. */
export interface SqliteSql {
  /** DDL, one statement each (run with `exec`), all `IF NOT EXISTS`. */
  create: string[];
  /** `key`, `now` → `value`, `version`, `expires_at` of a live session. */
  read: string;
  /** `expires_at`, `key`, `version`, `now`: sets the expiry of a live, unchanged session. */
  touch: string;
  /** `key`, `value`, `version`, `expires_at`: an upsert. */
  write: string;
  /** `key`, `value`, `version`, `expires_at`, `now`: inserts unless a live session exists. */
  insert: string;
  /** `value`, `version`, `expires_at`, `key`, `expected`, `now`: updates that live version only. */
  update: string;
  /** `key`. */
  delete: string;
  /** `key`, `expected`, `now`: deletes that live version only. */
  deleteVersion: string;
  /** `key`, `now` → a row if a live session exists. */
  has: string;
  /** `now`, `limit` → `key`, `raw` (its stored bytes in hex) from the start. */
  firstKeys: string;
  /** `after`, `now`, `limit` → `key`, `raw` after a key. */
  nextKeys: string;
  /** `now`, `limit` → `key`, `raw`, `value` from the start. */
  firstEntries: string;
  /** `after`, `now`, `limit` → `key`, `raw`, `value` after a key. */
  nextEntries: string;
  /** `now`, `limit`: deletes up to `limit` expired sessions. */
  purge: string;
  /** `key`, `owner`, `expires_at`, `now`: takes a lease that is free, expired or already ours. */
  acquireLease: string;
  /** `expires_at`, `key`, `owner`, `now`: extends our unexpired lease. */
  renewLease: string;
  /** `key`, `owner`: drops our lease. */
  releaseLease: string;
  /** `key`, `owner`, `now`: drops our lease if it has not expired. */
  releaseLiveLease: string;
  /** `key`, `owner`, `now`: changes nothing, but counts our lease if it has not expired. */
  holdLiveLease: string;
  /** `now`, `limit`: deletes up to `limit` expired leases. */
  purgeLeases: string;
}

/**
 * The columns each table must have; `key` is the primary key of both.
 *
 * @example
 * ```ts
 * COLUMNS.leases; // ["key", "owner", "expires_at"]
 * ```
 */
export const COLUMNS: { sessions: readonly string[]; leases: readonly string[] } = {
  sessions: ["key", "value", "version", "expires_at"],
  leases: ["key", "owner", "expires_at"],
};

/**
 * `table` → `name`, `pk` of each of its columns (SQLite's `table_info`).
 *
 * @example
 * ```ts
 * import { DatabaseSync } from "node:sqlite";
 *
 * new DatabaseSync(":memory:").prepare(TABLE_INFO).all("sessions"); // [] (no such table)
 * ```
 */
export const TABLE_INFO = `SELECT "name", "pk" FROM pragma_table_info(?)`;

/** The statements for the session table `table` and the lease table `leaseTable`. */
export function buildSql(table: string, leaseTable: string): SqliteSql {
  const t = quoteIdentifier(table);
  const l = quoteIdentifier(leaseTable);
  const index = quoteIdentifier(`${table}_expires_at`);
  const live = `("expires_at" IS NULL OR "expires_at" > ?)`;
  // A listed key comes with its stored bytes, so that a key the driver
  // would read back differently (a BLOB, text with a NUL or that is not
  // UTF-8: no key sessionkit wrote) is recognized.
  const listed = `"key", hex("key") AS "raw"`;
  return {
    create: [
      `CREATE TABLE IF NOT EXISTS ${t} (
  "key" TEXT NOT NULL PRIMARY KEY,
  "value" TEXT NOT NULL,
  "version" TEXT NOT NULL,
  "expires_at" INTEGER
)`,
      `CREATE INDEX IF NOT EXISTS ${index} ON ${t} ("expires_at") WHERE "expires_at" IS NOT NULL`,
      `CREATE TABLE IF NOT EXISTS ${l} (
  "key" TEXT NOT NULL PRIMARY KEY,
  "owner" TEXT NOT NULL,
  "expires_at" INTEGER NOT NULL
)`,
    ],
    read: `SELECT "value", "version", "expires_at" FROM ${t} WHERE "key" = ? AND ${live}`,
    touch: `UPDATE ${t} SET "expires_at" = ? WHERE "key" = ? AND "version" = ? AND ${live}`,
    write: `INSERT INTO ${t} ("key", "value", "version", "expires_at") VALUES (?, ?, ?, ?)
ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value", "version" = excluded."version",
  "expires_at" = excluded."expires_at"`,
    insert: `INSERT INTO ${t} ("key", "value", "version", "expires_at") VALUES (?, ?, ?, ?)
ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value", "version" = excluded."version",
  "expires_at" = excluded."expires_at"
WHERE ${t}."expires_at" IS NOT NULL AND ${t}."expires_at" <= ?`,
    update: `UPDATE ${t} SET "value" = ?, "version" = ?, "expires_at" = ?
WHERE "key" = ? AND "version" = ? AND ${live}`,
    delete: `DELETE FROM ${t} WHERE "key" = ?`,
    deleteVersion: `DELETE FROM ${t} WHERE "key" = ? AND "version" = ? AND ${live}`,
    has: `SELECT 1 AS "found" FROM ${t} WHERE "key" = ? AND ${live}`,
    firstKeys: `SELECT ${listed} FROM ${t} WHERE ${live} ORDER BY "key" LIMIT ?`,
    nextKeys: `SELECT ${listed} FROM ${t} WHERE "key" > ? AND ${live} ORDER BY "key" LIMIT ?`,
    firstEntries: `SELECT ${listed}, "value" FROM ${t} WHERE ${live} ORDER BY "key" LIMIT ?`,
    nextEntries: `SELECT ${listed}, "value" FROM ${t} WHERE "key" > ? AND ${live}
ORDER BY "key" LIMIT ?`,
    purge: `DELETE FROM ${t} WHERE rowid IN
  (SELECT rowid FROM ${t} WHERE "expires_at" <= ? LIMIT ?)`,
    acquireLease: `INSERT INTO ${l} ("key", "owner", "expires_at") VALUES (?, ?, ?)
ON CONFLICT ("key") DO UPDATE SET "owner" = excluded."owner", "expires_at" = excluded."expires_at"
WHERE ${l}."owner" = excluded."owner" OR ${l}."expires_at" <= ?`,
    renewLease:
      `UPDATE ${l} SET "expires_at" = ? WHERE "key" = ? AND "owner" = ? AND "expires_at" > ?`,
    releaseLease: `DELETE FROM ${l} WHERE "key" = ? AND "owner" = ?`,
    releaseLiveLease: `DELETE FROM ${l} WHERE "key" = ? AND "owner" = ? AND "expires_at" > ?`,
    holdLiveLease: `UPDATE ${l} SET "expires_at" = "expires_at"
WHERE "key" = ? AND "owner" = ? AND "expires_at" > ?`,
    purgeLeases: `DELETE FROM ${l} WHERE rowid IN
  (SELECT rowid FROM ${l} WHERE "expires_at" <= ? LIMIT ?)`,
  };
}
