/**
 * Table names of the MySQL/MariaDB storage: checking user-given names,
 * escaping them, and deriving the lease table name within the 64-character
 * identifier limit.
 *
 * @module
 */

/** The longest MySQL/MariaDB identifier, in characters. */
export const MAX_IDENTIFIER_CHARS = 64;

/**
 * Throws a `RangeError` unless `name` can be a table name as it is:
 * non-empty, at most 64 characters, only characters of the Basic
 * Multilingual Plane (what MySQL and MariaDB allow in quoted identifiers),
 * no NUL, and no trailing space (which both servers refuse).
 *
 * @example
 * ```ts
 * checkTableName("Sessions"); // "Sessions"
 * ```
 */
export function checkTableName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0) {
    throw new RangeError(
      `MysqlStorage: the table name must be a non-empty string, got ${JSON.stringify(name)}.`,
    );
  }
  // Lone surrogates and pairs (characters beyond the BMP) both fall in D800-DFFF.
  if (name.includes("\0") || /[\ud800-\udfff]/.test(name)) {
    throw new RangeError(
      `MysqlStorage: the table name ${JSON.stringify(name)} contains a NUL character or a ` +
        `character outside the Basic Multilingual Plane (such as an emoji), which MySQL and ` +
        `MariaDB identifiers cannot hold. Choose another name.`,
    );
  }
  if (name.endsWith(" ")) {
    throw new RangeError(
      `MysqlStorage: the table name ${JSON.stringify(name)} ends with a space, which MySQL and ` +
        `MariaDB refuse in table names. Remove the trailing space.`,
    );
  }
  if (name.length > MAX_IDENTIFIER_CHARS) {
    throw new RangeError(
      `MysqlStorage: the table name ${JSON.stringify(name)} is ${name.length} characters ` +
        `long; MySQL and MariaDB identifiers hold at most ${MAX_IDENTIFIER_CHARS}. Choose a ` +
        `shorter name.`,
    );
  }
  return name;
}

/**
 * Quotes an identifier with backticks, doubling any backtick inside it.
 *
 * @example
 * ```ts
 * escapeId("my`table"); // "`my``table`"
 * ```
 */
export function escapeId(name: string): string {
  return "`" + name.replaceAll("`", "``") + "`";
}

/**
 * FNV-1a over the UTF-16 code units of `text`, as 8 hex digits.
 *
 * @example
 * ```ts
 * fnv1a("sessions").length; // 8
 * ```
 */
export function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, "0");
}

/**
 * The lease table of `table`: `<table>_leases`, or, when that is longer than
 * 64 characters, the start of `table`, a hash of all of it and `_leases`, so
 * that different tables still get different lease tables.
 *
 * @example
 * ```ts
 * leaseTableName("sessions"); // "sessions_leases"
 * ```
 */
export function leaseTableName(table: string): string {
  const plain = `${table}_leases`;
  if (plain.length <= MAX_IDENTIFIER_CHARS) return plain;
  const tail = `_${fnv1a(table)}_leases`;
  // The head must not end with a space either.
  return table.slice(0, MAX_IDENTIFIER_CHARS - tail.length).trimEnd() + tail;
}
