/**
 * The SQL text of the PostgreSQL storage. Identifiers are escaped once here
 * with the driver's identifier escaping; every value is a bound parameter
 * (`$1`, `$2`, ...), never part of the text.
 *
 * @module
 */

import { deriveName, fnv1a } from "./names.ts";

/** Escapes an identifier, e.g. `pg.escapeIdentifier`. */
export type EscapeIdentifier = (name: string) => string;

/** The names a storage uses, unescaped. */
export interface TableNames {
  /** The schema, or `undefined` for the first one on the search path. */
  schema: string | undefined;
  /** The session table. */
  table: string;
  /** The index on the expiry column. */
  expiryIndex: string;
  /** The lease table. */
  leaseTable: string;
}

/**
 * Derives the index and lease table names from the table name.
 *
 * @example
 * ```ts
 * tableNames(undefined, "sessions").leaseTable; // "sessions_leases"
 * ```
 */
export function tableNames(schema: string | undefined, table: string): TableNames {
  return {
    schema,
    table,
    expiryIndex: deriveName(table, "expires_at_idx"),
    leaseTable: deriveName(table, "leases"),
  };
}

/**
 * The DDL creating the tables and the index, idempotently, without the lock.
 *
 * @example
 * ```ts
 * import pg from "npm:pg@^8";
 *
 * console.log(createTableSql(tableNames(undefined, "sessions"), pg.escapeIdentifier));
 * ```
 */
export function createTableSql(
  names: TableNames,
  escape: EscapeIdentifier,
  valueType: ValueType = "jsonb",
): string {
  const q = qualify(names, escape);
  return `CREATE TABLE IF NOT EXISTS ${q(names.table)} (
  key text COLLATE "C" PRIMARY KEY,
  value ${valueType} NOT NULL,
  version bigint NOT NULL,
  expires_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ${escape(names.expiryIndex)}
  ON ${q(names.table)} (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS ${q(names.leaseTable)} (
  key text COLLATE "C" PRIMARY KEY,
  owner text NOT NULL,
  expires_at timestamptz NOT NULL
);`;
}

function qualify(names: TableNames, escape: EscapeIdentifier): (table: string) => string {
  const prefix = names.schema === undefined ? "" : `${escape(names.schema)}.`;
  return (table) => prefix + escape(table);
}

/**
 * The column type of the session value: `jsonb` (queryable and indexable;
 * PostgreSQL normalizes key order and refuses `\u0000`) or `json` (the exact
 * JSON text as written).
 */
export type ValueType = "jsonb" | "json";

/** The first key of PostgreSQL's two-key advisory locks taken by sessionkit. */
const LOCK_CLASS = 0x53455353; // "SESS"

/** All statements of one storage. */
export interface Statements {
  /** Creates everything under a transaction-scoped advisory lock; no parameters. */
  ddl: string;
  /** `$1` key (`$2` ttl): value and version of a live session, renewing its expiry. */
  read: string;
  /** `$1` key: one row if a live session exists. */
  has: string;
  /** `$1` key, `$2` JSON text, `$3` new version (`$4` ttl): upsert. */
  write: string;
  /** `$1` key: delete. */
  delete: string;
  /** `$1` limit: first page of live keys. */
  firstKeys: string;
  /** `$1` after, `$2` limit: next page of live keys. */
  nextKeys: string;
  /** `$1` limit: first page of live entries. */
  firstEntries: string;
  /** `$1` after, `$2` limit: next page of live entries. */
  nextEntries: string;
  /** `$1` limit: deletes up to that many expired rows. */
  purge: string;
  /**
   * `$1` key, `$2` JSON text, `$3` new version (`$4` ttl): insert unless a
   * live session exists. Row count 1 when written.
   */
  insertIfAbsent: string;
  /**
   * `$1` key, `$2` JSON text, `$3` expected version, `$4` new version (`$5`
   * ttl): compare-and-set. Row count 1 when written.
   */
  updateIfVersion: string;
  /** `$1` key: one row if no live session exists. */
  absent: string;
  /** `$1` key, `$2` version: delete if still that version. Row count 1 when deleted. */
  deleteIfVersion: string;
  /** `$1` key, `$2` owner, `$3` ttl: take a free or expired lease. */
  acquireLease: string;
  /** `$1` key, `$2` owner, `$3` ttl: extend an owned, unexpired lease. */
  renewLease: string;
  /** `$1` key, `$2` owner: give an owned lease up. */
  releaseLease: string;
}

/**
 * Builds every statement of a storage. `ttl` tells whether sessions expire;
 * the TTL itself is always a bound parameter.
 *
 * @example
 * ```ts
 * import pg from "npm:pg@^8";
 *
 * const sql = buildStatements(tableNames("app", "Sessions"), pg.escapeIdentifier, true, "jsonb");
 * console.log(sql.write);
 * ```
 */
export function buildStatements(
  names: TableNames,
  escape: EscapeIdentifier,
  ttl: boolean,
  valueType: ValueType = "jsonb",
): Statements {
  const q = qualify(names, escape);
  const t = q(names.table);
  const l = q(names.leaseTable);
  const live = "(s.expires_at IS NULL OR s.expires_at > now())";
  const ms = (n: number) => `($${n}::float8 * interval '1 millisecond')`;
  const expiry = (n: number) => ttl ? `now() + ${ms(n)}` : "NULL::timestamptz";
  const lock = `SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${
    parseInt(fnv1a(`${names.schema ?? ""}.${names.table}`), 16) | 0
  });`;

  const read = ttl
    ? `WITH hit AS (
  SELECT s.key, s.value::text AS value, s.version::text AS version, s.expires_at
  FROM ${t} AS s WHERE s.key = $1 AND ${live}
), renewed AS (
  UPDATE ${t} AS s SET expires_at = now() + ${ms(2)}
  FROM hit WHERE s.key = hit.key AND hit.expires_at < now() + ${ms(2)} / 2
)
SELECT value, version FROM hit`
    : `SELECT s.value::text AS value, s.version::text AS version FROM ${t} AS s
WHERE s.key = $1 AND ${live}`;

  // The writer picks the new version (see versions.ts), so a conditional
  // write needs no RETURNING: its row count says whether it landed.
  const insert = `INSERT INTO ${t} AS s (key, value, version, expires_at, updated_at)
VALUES ($1, $2::${valueType}, $3::bigint, ${expiry(4)}, now())`;
  const replace = `value = excluded.value, version = excluded.version,
  expires_at = excluded.expires_at, updated_at = excluded.updated_at`;

  const page = (columns: string, first: boolean) =>
    `SELECT ${columns} FROM ${t} AS s WHERE ${first ? "" : "s.key > $1 AND "}${live}
ORDER BY s.key LIMIT $${first ? 1 : 2}`;

  return {
    ddl: `${lock}\n${createTableSql(names, escape, valueType)}`,
    read,
    has: `SELECT 1 FROM ${t} AS s WHERE s.key = $1 AND ${live}`,
    write: `${insert}\nON CONFLICT (key) DO UPDATE SET ${replace}`,
    delete: `DELETE FROM ${t} WHERE key = $1`,
    firstKeys: page("s.key", true),
    nextKeys: page("s.key", false),
    firstEntries: page("s.key, s.value::text AS value", true),
    nextEntries: page("s.key, s.value::text AS value", false),
    purge: `DELETE FROM ${t} AS s WHERE s.key IN (
  SELECT e.key FROM ${t} AS e WHERE e.expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED
) AND s.expires_at <= now()`,
    insertIfAbsent: `${insert}
ON CONFLICT (key) DO UPDATE SET ${replace}
WHERE s.expires_at IS NOT NULL AND s.expires_at <= now()`,
    updateIfVersion: `UPDATE ${t} AS s SET value = $2::${valueType}, version = $4::bigint,
  expires_at = ${expiry(5)}, updated_at = now()
WHERE s.key = $1 AND s.version = $3::bigint AND ${live}`,
    absent: `SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM ${t} AS s WHERE s.key = $1 AND ${live})`,
    deleteIfVersion:
      `DELETE FROM ${t} AS s WHERE s.key = $1 AND s.version = $2::bigint AND ${live}`,
    acquireLease: `INSERT INTO ${l} AS s (key, owner, expires_at) VALUES ($1, $2, now() + ${ms(3)})
ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE s.owner = excluded.owner OR s.expires_at <= now()
RETURNING 1`,
    renewLease: `UPDATE ${l} AS s SET expires_at = now() + ${ms(3)}
WHERE s.key = $1 AND s.owner = $2 AND s.expires_at > now()
RETURNING 1`,
    releaseLease: `DELETE FROM ${l} WHERE key = $1 AND owner = $2`,
  };
}
