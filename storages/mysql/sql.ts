/**
 * The SQL text of the MySQL/MariaDB storage. Identifiers are escaped once
 * here; every value (keys, JSON text, versions, TTLs, limits) is a `?`
 * parameter of a server-side prepared statement, never part of the text.
 *
 * Keys, values and lease owners travel as UTF-8 bytes, and values are read
 * back as bytes (`CAST(value AS BINARY)`), so the connection's character set
 * (`utf8mb4`, or an old `utf8mb3` that cannot hold emoji) changes nothing.
 * Times are the server's `UTC_TIMESTAMP(3)`: every process agrees on them,
 * whatever its clock or time zone.
 *
 * @module
 */

import { MAX_KEY_BYTES, MAX_OWNER_BYTES } from "./limits.ts";
import { escapeId } from "./names.ts";

/** `now`, as every statement computes it. */
const NOW = "UTC_TIMESTAMP(3)";
/** `now` plus a `?` parameter of microseconds. */
const LATER = `${NOW} + INTERVAL ? MICROSECOND`;
/** The row has not expired. */
const LIVE = `(\`expires_at\` IS NULL OR \`expires_at\` > ${NOW})`;

/**
 * The DDL of the session table and, separately, of the lease table.
 *
 * @example
 * ```ts
 * console.log(createTableSql("sessions", "sessions_leases").sessions);
 * ```
 */
export function createTableSql(table: string, leaseTable: string): {
  sessions: string;
  leases: string;
} {
  return {
    sessions: `CREATE TABLE IF NOT EXISTS ${escapeId(table)} (
  \`key\` VARBINARY(${MAX_KEY_BYTES}) NOT NULL,
  \`value\` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  \`version\` BIGINT UNSIGNED NOT NULL,
  \`expires_at\` DATETIME(3) NULL,
  PRIMARY KEY (\`key\`),
  KEY \`expires_at\` (\`expires_at\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
    leases: `CREATE TABLE IF NOT EXISTS ${escapeId(leaseTable)} (
  \`key\` VARBINARY(${MAX_KEY_BYTES}) NOT NULL,
  \`owner\` VARBINARY(${MAX_OWNER_BYTES}) NOT NULL,
  \`expires_at\` DATETIME(3) NOT NULL,
  \`grants\` BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (\`key\`)
) ENGINE=InnoDB`,
  };
}

/** All statements of one storage; the comment of each lists its parameters. */
export interface Statements {
  /**
   * (TTL in µs,) key: value bytes, version text, and whether the expiry needs
   * renewing (with a TTL: less than the TTL left) or clearing (without one).
   */
  read: string;
  /**
   * (lifetime µs,) key, version: renews or clears the expiry of that version
   * only, while it is live; nothing changed otherwise.
   */
  touch: string;
  /** key: one row if a live session exists. */
  has: string;
  /** key, value, new version (, lifetime µs): upsert. */
  write: string;
  /** key, value, new version (, lifetime µs): insert; fails with a duplicate key if a row exists. */
  insert: string;
  /** value, new version, (lifetime µs,) key: replaces an expired row. */
  replaceExpired: string;
  /** value, new version, (lifetime µs,) key, expected version: compare-and-set. */
  update: string;
  /** key: delete. */
  delete: string;
  /** key, version: delete a live row of that version. */
  deleteVersion: string;
  /** limit: first page of live keys. */
  firstKeys: string;
  /** after, limit: next page of live keys. */
  nextKeys: string;
  /** limit: first page of live keys and value bytes. */
  firstEntries: string;
  /** after, limit: next page of live keys and value bytes. */
  nextEntries: string;
  /** limit: deletes up to that many expired rows, oldest first. */
  purge: string;
  /** key, owner, TTL µs: takes a free lease; duplicate key if a row exists. */
  insertLease: string;
  /** owner, TTL µs, key, owner: takes an expired or own lease. */
  takeLease: string;
  /** TTL µs, key, owner: extends an own, unexpired lease. */
  renewLease: string;
  /** key, owner: gives an own lease up. */
  releaseLease: string;
  /** key, owner: one row while the owner holds an unexpired lease. */
  holdsLease: string;
  /**
   * The writes of a locked save, each done only while the owner holds an
   * unexpired lease of the key: the parameters of the unlocked statement of
   * the same name, then key and owner of the lease.
   */
  locked: {
    write: string;
    insert: string;
    replaceExpired: string;
    update: string;
    delete: string;
    deleteVersion: string;
    /** key, owner, key: whether the lease is held, and whether a live session exists. */
    absent: string;
  };
}

/**
 * Builds every statement of a storage. `ttl` tells whether sessions expire;
 * the TTL itself is always a parameter.
 *
 * @example
 * ```ts
 * const sql = buildStatements("sessions", "sessions_leases", true);
 * console.log(sql.write);
 * ```
 */
export function buildStatements(table: string, leaseTable: string, ttl: boolean): Statements {
  const t = escapeId(table);
  const l = escapeId(leaseTable);
  const expiry = ttl ? LATER : "NULL";
  // With a TTL, a read renews once less than the TTL is left (see
  // expiry.ts), and always when the row has no expiry (it was written
  // without a TTL); without one, a read clears any expiry an earlier
  // configuration left.
  const stale = ttl
    ? `(\`expires_at\` IS NULL OR \`expires_at\` < ${LATER})`
    : "(`expires_at` IS NOT NULL)";
  // Versions (shared/bigint_versions.ts) travel as decimal text: MySQL would
  // compare an integer column with a text parameter as floating-point
  // numbers, which cannot tell large neighbours apart.
  const version = "CAST(? AS UNSIGNED)";
  const page = (columns: string, first: boolean) =>
    `SELECT ${columns} FROM ${t} WHERE ${first ? "" : "`key` > ? AND "}${LIVE}
ORDER BY \`key\` LIMIT ?`;
  const values = "CAST(`value` AS BINARY)";
  const columns = "(`key`, `value`, `version`, `expires_at`)";
  const row = `${columns} VALUES (?, ?, ${version}, ${expiry})`;
  // A locked save reads the lease row with a shared lock (in any isolation
  // level), so a process taking the lease over waits until the save is in.
  const held = `FROM ${l} WHERE \`key\` = ? AND \`owner\` = ? AND \`expires_at\` > ${NOW}`;
  const guard = `EXISTS (SELECT 1 ${held} LOCK IN SHARE MODE)`;
  const upsert =
    `ON DUPLICATE KEY UPDATE \`value\` = VALUES(\`value\`), \`version\` = VALUES(\`version\`),
  \`expires_at\` = VALUES(\`expires_at\`)`;
  const insertHeld = `INSERT INTO ${t} ${columns}
SELECT ?, ?, ${version}, ${expiry} ${held} LOCK IN SHARE MODE`;
  const replaceExpired =
    `UPDATE ${t} SET \`value\` = ?, \`version\` = ${version}, \`expires_at\` = ${expiry}
WHERE \`key\` = ? AND \`expires_at\` <= ${NOW}`;
  const update =
    `UPDATE ${t} SET \`value\` = ?, \`version\` = ${version}, \`expires_at\` = ${expiry}
WHERE \`key\` = ? AND \`version\` = ${version} AND ${LIVE}`;
  const deleteVersion =
    `DELETE FROM ${t} WHERE \`key\` = ? AND \`version\` = ${version} AND ${LIVE}`;

  return {
    read: `SELECT ${values}, CAST(\`version\` AS CHAR), ${stale} FROM ${t}
WHERE \`key\` = ? AND ${LIVE}`,
    // Only while live: an expired row stays expired (the driver reads again).
    touch: `UPDATE ${t} SET \`expires_at\` = ${expiry}
WHERE \`key\` = ? AND \`version\` = ${version} AND ${LIVE}`,
    has: `SELECT 1 FROM ${t} WHERE \`key\` = ? AND ${LIVE}`,
    write: `INSERT INTO ${t} ${row}
${upsert}`,
    insert: `INSERT INTO ${t} ${row}`,
    replaceExpired,
    update,
    delete: `DELETE FROM ${t} WHERE \`key\` = ?`,
    deleteVersion,
    firstKeys: page("`key`", true),
    nextKeys: page("`key`", false),
    firstEntries: page(`\`key\`, ${values}`, true),
    nextEntries: page(`\`key\`, ${values}`, false),
    purge: `DELETE FROM ${t} WHERE \`expires_at\` <= ${NOW}
ORDER BY \`expires_at\`, \`key\` LIMIT ?`,
    insertLease: `INSERT INTO ${l} (\`key\`, \`owner\`, \`expires_at\`) VALUES (?, ?, ${LATER})`,
    // `grants` changes with every grant, so the row always counts as changed,
    // with or without the client's FOUND_ROWS flag.
    takeLease:
      `UPDATE ${l} SET \`owner\` = ?, \`expires_at\` = ${LATER}, \`grants\` = \`grants\` + 1
WHERE \`key\` = ? AND (\`owner\` = ? OR \`expires_at\` <= ${NOW})`,
    renewLease: `UPDATE ${l} SET \`expires_at\` = ${LATER}, \`grants\` = \`grants\` + 1
WHERE \`key\` = ? AND \`owner\` = ? AND \`expires_at\` > ${NOW}`,
    releaseLease: `DELETE FROM ${l} WHERE \`key\` = ? AND \`owner\` = ?`,
    holdsLease: `SELECT 1 ${held}`,
    locked: {
      write: `${insertHeld}
${upsert}`,
      insert: insertHeld,
      replaceExpired: `${replaceExpired} AND ${guard}`,
      update: `${update} AND ${guard}`,
      delete: `DELETE FROM ${t} WHERE \`key\` = ? AND ${guard}`,
      deleteVersion: `${deleteVersion} AND ${guard}`,
      absent: `SELECT ${guard}, EXISTS (SELECT 1 FROM ${t} WHERE \`key\` = ? AND ${LIVE})`,
    },
  };
}
