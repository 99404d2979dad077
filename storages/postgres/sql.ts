/**
 * The SQL text of the PostgreSQL storage. Identifiers are escaped once here
 * with the driver's identifier escaping; every value is a bound parameter
 * (`$1`, `$2`, ...), never part of the text. The value parameter is left
 * untyped, so PostgreSQL takes the column's own type: the statements work on
 * a `json` and on a `jsonb` column alike.
 *
 * @module
 */

import { LIFETIME } from "../shared/expiry.ts";
import { deriveName, fnv1a } from "./names.ts";
import type { ValueType } from "./types.ts";

export type { ValueType } from "./types.ts";

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
  /**
   * The function taking a lease and then reading the session, each with a
   * snapshot of its own (see {@link Statements.acquireLeaseAndRead}).
   */
  leaseRead: string;
  /**
   * The function saving under a lease and giving the lease up (see
   * {@link Statements.saveIfVersionCall}).
   */
  saveRelease: string;
}

/**
 * Derives the index and lease table names from the table name.
 *
 * @example
 * ```ts
 * tableNames(undefined, "sessions").leaseTable; // "sessions_leases"
 * tableNames(undefined, "sessions").leaseRead; // "sessions_lease_read"
 * tableNames(undefined, "sessions").saveRelease; // "sessions_save_release"
 * ```
 */
export function tableNames(schema: string | undefined, table: string): TableNames {
  return {
    schema,
    table,
    expiryIndex: deriveName(table, "expires_at_idx"),
    leaseTable: deriveName(table, "leases"),
    leaseRead: deriveName(table, "lease_read"),
    saveRelease: deriveName(table, "save_release"),
  };
}

function qualify(names: TableNames, escape: EscapeIdentifier): (table: string) => string {
  const prefix = names.schema === undefined ? "" : `${escape(names.schema)}.`;
  return (table) => prefix + escape(table);
}

function sessionTableSql(names: TableNames, escape: EscapeIdentifier, type: ValueType): string {
  const t = qualify(names, escape)(names.table);
  return `CREATE TABLE IF NOT EXISTS ${t} (
  key text COLLATE "C" PRIMARY KEY,
  value ${type} NOT NULL,
  version bigint NOT NULL,
  expires_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ${escape(names.expiryIndex)}
  ON ${t} (expires_at) WHERE expires_at IS NOT NULL;`;
}

/**
 * The lease table is `UNLOGGED`: taking a lease writes no WAL, so it costs
 * no `fsync` (about 0.4 ms instead of 1.1-1.4 ms per lease here). Leases
 * need no durability: after a crash or a failover the table is empty, a
 * holder's renewal then finds its lease gone, and its save is refused
 * ("lease", nothing written) by the statement that checks the lease.
 */
function leaseTableSql(names: TableNames, escape: EscapeIdentifier): string {
  return `CREATE UNLOGGED TABLE IF NOT EXISTS ${qualify(names, escape)(names.leaseTable)} (
  key text COLLATE "C" PRIMARY KEY,
  owner text NOT NULL,
  expires_at timestamptz NOT NULL
);`;
}

/** Dollar-quotes `body` with a tag that does not occur in it. */
function dollarQuoted(body: string): string {
  let tag = "$sk$";
  for (let n = 1; body.includes(tag); n++) tag = `$sk${n}$`;
  return `${tag}${body}${tag}`;
}

/**
 * The function behind {@link Statements.acquireLeaseAndRead}: `$1` key, `$2`
 * owner, `$3` lease ttl in ms. It takes the lease exactly as
 * {@link Statements.acquireLease} does, and then, only if the lease is now
 * `$2`'s, returns the live session (value and version as text, and its
 * expiry): one row, all `NULL` when nothing is stored; no row when another
 * owner holds the lease.
 *
 * Why a function: under READ COMMITTED one statement reads with one
 * snapshot, taken when it starts. When the lease upsert has to wait for the
 * holder's transaction (which wrote the session and gave the lease up), a
 * read in the same statement would still see the session as it was before
 * that write. A `VOLATILE` function takes a fresh snapshot for each of its
 * statements, so its `SELECT` sees every write that landed before the
 * lease was taken. It is PL/pgSQL (installed in every database by default),
 * whose plans are cached per connection: about 400 µs per call here against
 * 590 µs for the same body as an SQL function (planned at every call) and
 * 780 µs for the two statements sent one after the other. It holds no state and
 * is created with `CREATE OR REPLACE` (after both tables: its body is
 * checked against them when it is created) when a locked read first finds
 * it missing, and by {@link createTableSql}. It does not depend on the
 * tables: dropping them leaves it behind.
 */
function leaseReadSql(names: TableNames, escape: EscapeIdentifier, at = names): string {
  const q = qualify(names, escape);
  const body = `
#variable_conflict use_column
BEGIN
INSERT INTO ${q(names.leaseTable)} AS l (key, owner, expires_at)
VALUES ($1, $2, now() + $3 * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE l.owner = excluded.owner OR l.expires_at <= now();
RETURN QUERY SELECT s.value::text, s.version::text, s.expires_at
FROM ${q(names.leaseTable)} AS l
LEFT JOIN ${q(names.table)} AS s ON s.key = $1 AND COALESCE(s.expires_at > now(), true)
WHERE l.key = $1 AND l.owner = $2;
END;
`;
  return `CREATE OR REPLACE FUNCTION ${qualify(at, escape)(names.leaseRead)}(text, text, float8)
RETURNS TABLE (value text, version text, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE AS ${dollarQuoted(body)};`;
}

/** The argument types of the function behind {@link Statements.saveIfVersionCall}. */
export const SAVE_RELEASE_ARGS = "text, text, text, bigint, bigint, float8";

/**
 * The function behind {@link Statements.saveIfVersionCall}: `$1` key, `$2`
 * owner, `$3` JSON text, `$4` expected version, `$5` new version, `$6` ttl
 * in ms (`NULL`: no expiry). The JSON comes as text, cast to `json`: a
 * `json` column keeps it as it is, a `jsonb` one converts it on assignment,
 * as the statement's untyped parameter does; so one function, of one
 * signature, serves either column, also after its type was changed. While `$2` holds an unexpired lease (locked
 * first, as {@link Statements.saveIfVersion} does), it writes if the
 * version is still `$4` and then gives the lease up; it answers one row,
 * `leased` and `done`, as that statement does.
 *
 * Why a function: the statement is a chain of data-modifying `WITH`
 * queries, planned at every call (about 100 µs here, a third of a plain
 * conditional write); a PL/pgSQL function plans its statements once per
 * connection, and measured within 5% of the conditional write alone
 * (bench/locked_interleaved.ts). It is created and found missing as the
 * function of {@link TableNames.leaseRead} is.
 */
function saveReleaseSql(names: TableNames, escape: EscapeIdentifier, at = names): string {
  const q = qualify(names, escape);
  const body = `
#variable_conflict use_column
BEGIN
PERFORM 1 FROM ${q(names.leaseTable)} AS l
WHERE l.key = $1 AND l.owner = $2 AND l.expires_at > now() FOR UPDATE;
IF NOT FOUND THEN
  RETURN QUERY SELECT false, false;
  RETURN;
END IF;
UPDATE ${q(names.table)} AS s SET value = $3::json, version = $5,
  expires_at = now() + $6 * interval '1 millisecond' * ${LIFETIME}, updated_at = now()
WHERE s.key = $1 AND s.version = $4 AND COALESCE(s.expires_at > now(), true);
IF NOT FOUND THEN
  RETURN QUERY SELECT true, false;
  RETURN;
END IF;
DELETE FROM ${q(names.leaseTable)} AS l WHERE l.key = $1 AND l.owner = $2;
RETURN QUERY SELECT true, true;
END;
`;
  return `CREATE OR REPLACE FUNCTION ${qualify(at, escape)(names.saveRelease)}(${SAVE_RELEASE_ARGS})
RETURNS TABLE (leased boolean, done boolean)
LANGUAGE plpgsql VOLATILE AS ${dollarQuoted(body)};`;
}

/**
 * The DDL creating both tables, the index and the functions behind
 * {@link Statements.acquireLeaseAndRead} and
 * {@link Statements.saveIfVersionCall}, idempotently, for running by hand.
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
  valueType: ValueType = "json",
): string {
  return `${sessionTableSql(names, escape, valueType)}\n${leaseTableSql(names, escape)}\n${
    leaseReadSql(names, escape)
  }\n${saveReleaseSql(names, escape)}`;
}

/** The first key of PostgreSQL's two-key advisory locks taken by sessionkit. */
const LOCK_CLASS = 0x53455353; // "SESS"

/** The objects the locked calls use. */
export type LockedObject = "session" | "lease" | "leaseRead" | "saveRelease";

/** All statements of one storage. */
export interface Statements {
  /** Creates the session table and its index under an advisory lock; no parameters. */
  sessionDdl: string;
  /**
   * The DDL of each object the locked calls use, without the lock: the
   * session table with its index, the lease table and the two functions
   * (which need both tables), in `schema` (the storage's own when
   * `undefined`: as given, or the first of the search path).
   * `Runner.create` sends the lock and the parts that are missing.
   */
  lockedParts(schema: string | undefined): Record<LockedObject, string>;
  /**
   * Whether the functions' bodies name the schema of the tables (the
   * storage was given `schema`): then they work for a caller whatever its
   * search path, and replace functions whose bodies do not.
   */
  schemaNamed: boolean;
  /**
   * For a storage given `schema`: one row, `named`, whether the bodies of
   * the functions (where they exist) name this storage's tables with the
   * schema, as its own do; with its parameters. `undefined` without
   * `schema`: such bodies name the tables without one.
   */
  functionBodies: { text: string; values: string[] } | undefined;
  /** Takes the advisory lock of this storage's DDL (see {@link Statements.sessionDdl}). */
  ddlLock: string;
  /**
   * One row, whether each object of {@link LockedObject} exists where the
   * statements find it (along the search path when no schema is given),
   * and the schema the session table was found in, if the user may create
   * objects there (`sessionSchema`); with its parameters, the objects' names.
   */
  lockedExist: { text: string; values: string[] };
  /**
   * `$1` key (`$2` ttl): value and version of a live session, and `due`:
   * whether {@link Statements.touch} should follow (with a TTL, less than a
   * TTL is left or there is no expiry; without, an expiry is left over).
   * A plain `SELECT`: a data-modifying statement costs a read about 0.3 ms.
   */
  read: string;
  /**
   * `$1` key, `$2` version read (`$3` ttl): with a TTL, sets the expiry
   * {@link LIFETIME} TTLs ahead; without, clears it. Only on that version
   * while it is live, never changing the version; row count 0 otherwise.
   */
  touch: string;
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
  /**
   * `$1` key, `$2` owner, `$3` lease ttl (`$4` ttl): takes the lease as
   * {@link Statements.acquireLease} and then reads as {@link Statements.read}
   * (value, version, `due`), through the function of
   * {@link TableNames.leaseRead}: no row when another owner holds the lease,
   * one row with `NULL` version when nothing is stored.
   */
  acquireLeaseAndRead: string;
  /**
   * `$1` key, `$2` owner, `$3` JSON text, `$4` new version (`$5` ttl): the
   * upsert of {@link Statements.write} and the release of the lease, only
   * while `$2` holds an unexpired lease. Every `save*` statement answers one
   * row: `leased` (the lease was held) and `done` (written or deleted, and
   * the lease given up).
   */
  saveWrite: string;
  /** `$1` key, `$2` owner, `$3` JSON text, `$4` new version (`$5` ttl): as {@link Statements.insertIfAbsent}. */
  saveIfAbsent: string;
  /**
   * `$1` key, `$2` owner, `$3` JSON text, `$4` expected version, `$5` new
   * version (`$6` ttl): as {@link Statements.updateIfVersion}.
   */
  saveIfVersion: string;
  /** `$1` key, `$2` owner: as {@link Statements.delete}. */
  saveDelete: string;
  /** `$1` key, `$2` owner: nothing deleted, done if no live session exists (as {@link Statements.absent}). */
  saveDeleteIfAbsent: string;
  /** `$1` key, `$2` owner, `$3` version: as {@link Statements.deleteIfVersion}. */
  saveDeleteIfVersion: string;
  /**
   * `$1` key, `$2` owner, `$3` JSON text, `$4` expected version, `$5` new
   * version, `$6` ttl or `NULL`: {@link Statements.saveIfVersion} through
   * the function of {@link TableNames.saveRelease}.
   */
  saveIfVersionCall: string;
  /**
   * The `save*` statements above without the release: while `$2` holds an
   * unexpired lease, the write or delete, the lease kept (`done`: written
   * or deleted). For a save while another update of the key still runs in
   * this process.
   */
  keep: SaveStatements;
}

/** The statements of a locked save, one per condition. */
export type SaveStatements = Pick<
  Statements,
  | "saveWrite"
  | "saveIfAbsent"
  | "saveIfVersion"
  | "saveDelete"
  | "saveDeleteIfAbsent"
  | "saveDeleteIfVersion"
>;

/**
 * Builds every statement of a storage. `ttl` tells whether sessions expire;
 * the TTL itself is always a bound parameter.
 *
 * @example
 * ```ts
 * import pg from "npm:pg@^8";
 *
 * const sql = buildStatements(tableNames("app", "Sessions"), pg.escapeIdentifier, true, "json");
 * console.log(sql.write);
 * ```
 */
export function buildStatements(
  names: TableNames,
  escape: EscapeIdentifier,
  ttl: boolean,
  valueType: ValueType = "json",
): Statements {
  const q = qualify(names, escape);
  const t = q(names.table);
  const l = q(names.leaseTable);
  // Live: no expiry, or one still ahead. Written with COALESCE rather than
  // "IS NULL OR > now()": the same truth for every row (a NULL expiry gives
  // true, any other the comparison), and PostgreSQL plans and runs it about
  // 8 µs of server CPU faster per statement (bench/detection_cost.ts).
  const live = "COALESCE(s.expires_at > now(), true)";
  const ms = (n: number) => `($${n}::float8 * interval '1 millisecond')`;
  // Lazy renewal (see shared/expiry.ts): written LIFETIME TTLs ahead,
  // renewed by a read once less than a TTL is left.
  const life = (n: number) => `now() + ${ms(n)} * ${LIFETIME}`;
  const expiry = (n: number) => ttl ? life(n) : "NULL::timestamptz";
  // Two locks, taken in this order. The second is keyed by the table's name
  // alone: storages that name the schema and storages that leave it to the
  // search path must take the same lock, or their DDL runs concurrently
  // (and PostgreSQL fails one with "tuple concurrently updated"); same-named
  // tables of two schemas only wait for each other's DDL. The first is the
  // key of earlier versions (schema as given, and the table), so that their
  // processes, during a rolling deploy, still wait for this one's DDL.
  const key = (text: string) => parseInt(fnv1a(text), 16) | 0;
  const lock = `SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${
    key(`${names.schema ?? ""}.${names.table}`)
  });\nSELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${key(names.table)});`;

  const dueOf = (n: number) =>
    ttl
      ? `(s.expires_at IS NULL OR s.expires_at < now() + ${ms(n)})`
      : "(s.expires_at IS NOT NULL)";
  const read = `SELECT s.value::text AS value, s.version::text AS version, ${dueOf(2)} AS due
FROM ${t} AS s WHERE s.key = $1 AND ${live}`;
  // The expiry changes only on the version that was read, while it is live
  // (a concurrent write keeps its own; an expired row stays expired), and the
  // version never. No row touched: the driver reads again.
  const touch = `UPDATE ${t} AS s SET expires_at = ${ttl ? life(3) : "NULL"}
WHERE s.key = $1 AND s.version = $2::bigint AND ${live}`;

  // The writer picks the new version (see shared/bigint_versions.ts), so a conditional
  // write needs no RETURNING: its row count says whether it landed.
  const insert = `INSERT INTO ${t} AS s (key, value, version, expires_at, updated_at)
VALUES ($1, $2, $3::bigint, ${expiry(4)}, now())`;
  const replace = `value = excluded.value, version = excluded.version,
  expires_at = excluded.expires_at, updated_at = excluded.updated_at`;

  // Saves under a lease: the lease row is locked first (FOR UPDATE: a
  // concurrent takeover of an expired lease waits, or is waited for and
  // then seen), the write or delete runs only while it is held, and the
  // lease is deleted only if that was done. The insert takes its row from a
  // SELECT so that nothing is inserted without the lease; its value
  // parameter still takes the column's type.
  const held = `lease AS (
  SELECT 1 FROM ${l} AS l WHERE l.key = $1 AND l.owner = $2 AND l.expires_at > now() FOR UPDATE
)`;
  const leased = "EXISTS (SELECT 1 FROM lease)";
  const savedBy = (release: boolean) => (write: string | undefined, done: string) =>
    `WITH ${held}${write === undefined ? "" : `,\nw AS (${write})`}${
      release
        ? `,\nreleased AS (DELETE FROM ${l} AS l WHERE l.key = $1 AND l.owner = $2 AND ${done})`
        : ""
    }
SELECT ${leased} AS leased, ${done} AS done`;
  const wrote = "EXISTS (SELECT 1 FROM w)";
  const insertLeased = `INSERT INTO ${t} AS s (key, value, version, expires_at, updated_at)
SELECT $1, $3, $4::bigint, ${expiry(5)}, now() WHERE ${leased}`;

  const page = (columns: string, first: boolean) =>
    `SELECT ${columns} FROM ${t} AS s WHERE ${first ? "" : "s.key > $1 AND "}${live}
ORDER BY s.key LIMIT $${first ? 1 : 2}`;

  const saves = (saved: ReturnType<typeof savedBy>): SaveStatements => ({
    saveWrite: saved(
      `${insertLeased}\nON CONFLICT (key) DO UPDATE SET ${replace}\nRETURNING 1`,
      wrote,
    ),
    saveIfAbsent: saved(
      `${insertLeased}\nON CONFLICT (key) DO UPDATE SET ${replace}
WHERE s.expires_at IS NOT NULL AND s.expires_at <= now()\nRETURNING 1`,
      wrote,
    ),
    saveIfVersion: saved(
      `UPDATE ${t} AS s SET value = $3, version = $5::bigint,
  expires_at = ${expiry(6)}, updated_at = now()
WHERE s.key = $1 AND s.version = $4::bigint AND ${live} AND ${leased}\nRETURNING 1`,
      wrote,
    ),
    saveDelete: saved(`DELETE FROM ${t} AS s WHERE s.key = $1 AND ${leased}`, leased),
    saveDeleteIfAbsent: saved(
      undefined,
      `${leased} AND NOT EXISTS (SELECT 1 FROM ${t} AS s WHERE s.key = $1 AND ${live})`,
    ),
    saveDeleteIfVersion: saved(
      `DELETE FROM ${t} AS s WHERE s.key = $1 AND s.version = $3::bigint AND ${live}
  AND ${leased}\nRETURNING 1`,
      wrote,
    ),
  });

  return {
    sessionDdl: `${lock}\n${sessionTableSql(names, escape, valueType)}`,
    lockedParts(schema) {
      // Made in `schema`; the functions' bodies name the tables as the
      // statements do, so that they find the same ones.
      const at = schema === undefined ? names : { ...names, schema };
      return {
        session: sessionTableSql(at, escape, valueType),
        lease: leaseTableSql(at, escape),
        leaseRead: leaseReadSql(names, escape, at),
        saveRelease: saveReleaseSql(names, escape, at),
      };
    },
    schemaNamed: names.schema !== undefined,
    functionBodies: names.schema === undefined ? undefined : {
      text: `SELECT coalesce(bool_and(strpos(p.prosrc, $1) > 0 AND strpos(p.prosrc, $2) > 0), true)
  AS named FROM pg_proc AS p WHERE p.oid IN (to_regprocedure($3), to_regprocedure($4))`,
      values: [
        t,
        l,
        `${q(names.leaseRead)}(text, text, float8)`,
        `${q(names.saveRelease)}(${SAVE_RELEASE_ARGS})`,
      ],
    },
    ddlLock: lock,
    lockedExist: {
      text: `SELECT to_regclass($1) IS NOT NULL AS session, to_regclass($2) IS NOT NULL AS lease,
  to_regprocedure($3) IS NOT NULL AS "leaseRead", to_regprocedure($4) IS NOT NULL AS "saveRelease",
  (SELECT n.nspname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
   WHERE c.oid = to_regclass($1) AND has_schema_privilege(n.oid, 'CREATE')) AS "sessionSchema"`,
      values: [
        t,
        l,
        `${q(names.leaseRead)}(text, text, float8)`,
        `${q(names.saveRelease)}(${SAVE_RELEASE_ARGS})`,
      ],
    },
    read,
    touch,
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
    updateIfVersion: `UPDATE ${t} AS s SET value = $2, version = $4::bigint,
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
    acquireLeaseAndRead: `SELECT s.value, s.version, ${dueOf(4)} AS due
FROM ${q(names.leaseRead)}($1, $2, $3::float8) AS s`,
    ...saves(savedBy(true)),
    saveIfVersionCall: `SELECT leased, done FROM ${
      q(names.saveRelease)
    }($1::text, $2::text, $3::text, $4::bigint, $5::bigint, $6::float8)`,
    keep: saves(savedBy(false)),
  };
}
