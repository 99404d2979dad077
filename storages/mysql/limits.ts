/**
 * The size limits of the MySQL/MariaDB storage, and why they are what they
 * are.
 *
 * @module
 */

/**
 * The longest session key, in UTF-8 bytes. Keys are the primary key, a
 * `VARBINARY(767)` column, and InnoDB indexes a column only up to a limit
 * that depends on the row format and page size: 3072 bytes with the default
 * DYNAMIC row format and 16 KiB pages, but 767 bytes with the COMPACT and
 * REDUNDANT row formats and 768 with 4 KiB pages. 767 bytes fit every InnoDB
 * configuration of MySQL 5.7+ and MariaDB 10.2+, so the same table can be
 * created anywhere; Telegram session keys are a few dozen bytes.
 */
export const MAX_KEY_BYTES = 767;

/** Why keys are limited, for the layer's error message. */
export const MAX_KEY_REASON =
  "the key is the primary key of the session table, and 767 bytes is what an InnoDB index " +
  "holds in every row format and page size";

/** The longest lease owner, in UTF-8 bytes (a `VARBINARY(255)` column). */
export const MAX_OWNER_BYTES = 255;

/**
 * Bytes of one statement besides the session's JSON text: the command,
 * statement id, parameter types, the key (at most 767 bytes), the version
 * and the TTL. A value may take `max_allowed_packet` minus this.
 */
export const VALUE_OVERHEAD = 1024;

/**
 * The largest JSON text, in UTF-8 bytes, that one statement can carry to a
 * server whose `max_allowed_packet` is `packet`.
 *
 * @example
 * ```ts
 * maxValueBytes(16 * 1024 * 1024); // 16776192
 * ```
 */
export function maxValueBytes(packet: number): number {
  return packet - VALUE_OVERHEAD;
}
