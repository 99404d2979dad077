/**
 * Identifier rules for the PostgreSQL storage: checking user-given names and
 * deriving index and lease table names that stay within PostgreSQL's 63-byte
 * identifier limit.
 *
 * @module
 */

/** PostgreSQL's longest identifier in bytes (NAMEDATALEN - 1). */
export const MAX_IDENTIFIER_BYTES = 63;

const encoder = new TextEncoder();

/**
 * Throws a `RangeError` unless `name` can be used as a PostgreSQL identifier
 * as it is: non-empty, without NUL characters, well-formed Unicode, and at
 * most 63 bytes (PostgreSQL silently cuts longer names, which could make two
 * different names point at the same table).
 *
 * @example
 * ```ts
 * checkIdentifier("table", "Sessions"); // fine
 * ```
 */
export function checkIdentifier(what: string, name: unknown): string {
  if (typeof name !== "string" || name.length === 0) {
    throw new RangeError(
      `PostgresStorage: the ${what} name must be a non-empty string, got ${JSON.stringify(name)}.`,
    );
  }
  if (name.includes("\0") || !name.isWellFormed()) {
    throw new RangeError(
      `PostgresStorage: the ${what} name ${JSON.stringify(name)} contains a NUL character or a ` +
        `lone surrogate, which PostgreSQL identifiers cannot hold. Choose another name.`,
    );
  }
  const bytes = encoder.encode(name).length;
  if (bytes > MAX_IDENTIFIER_BYTES) {
    throw new RangeError(
      `PostgresStorage: the ${what} name ${JSON.stringify(name)} is ${bytes} bytes long, but ` +
        `PostgreSQL identifiers hold at most ${MAX_IDENTIFIER_BYTES} bytes and longer ones are ` +
        `cut silently. Choose a shorter name.`,
    );
  }
  return name;
}

/**
 * FNV-1a over the UTF-8 bytes of `text`, as 8 hex digits.
 *
 * @example
 * ```ts
 * fnv1a("sessions").length; // 8
 * ```
 */
export function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (const byte of encoder.encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0).toString(16).padStart(8, "0");
}

/**
 * The name `<base>_<suffix>`, or, when that is longer than 63 bytes, the
 * longest prefix of `base` (cut on a character boundary) followed by a hash
 * of the whole `base` and the suffix, so that different bases still give
 * different names.
 *
 * @example
 * ```ts
 * deriveName("sessions", "leases"); // "sessions_leases"
 * ```
 */
export function deriveName(base: string, suffix: string): string {
  const plain = `${base}_${suffix}`;
  if (encoder.encode(plain).length <= MAX_IDENTIFIER_BYTES) return plain;
  const tail = `_${fnv1a(base)}_${suffix}`;
  const room = MAX_IDENTIFIER_BYTES - encoder.encode(tail).length;
  let head = "";
  let used = 0;
  for (const char of base) {
    const size = encoder.encode(char).length;
    if (used + size > room) break;
    head += char;
    used += size;
  }
  return head + tail;
}
