/**
 * Version tokens of the MySQL/MariaDB storage: the `version BIGINT UNSIGNED`
 * column.
 *
 * The writer picks the new version itself, a random 63-bit number, and sends
 * it with the write, so a conditional write learns whether it landed from the
 * affected-row count alone: MySQL has no `UPDATE ... RETURNING`. A stale
 * reader's version comes back only if a later write draws the very same
 * number: about 1 in 10^19 per write. Versions travel as decimal text and are
 * compared with `CAST(? AS UNSIGNED)`, because MySQL compares an integer
 * column with a text parameter as floating-point numbers, which cannot tell
 * large neighbours apart.
 *
 * @module
 */

const draw = new BigUint64Array(1);

/**
 * A fresh version token: a random integer in 0 .. 2^63 - 1, as decimal text.
 *
 * @example
 * ```ts
 * isVersion(newVersion()); // true
 * ```
 */
export function newVersion(): string {
  crypto.getRandomValues(draw);
  return String(draw[0] >> 1n);
}

/**
 * Whether `token` can be a stored version (decimal text of a number below
 * 2^63). Anything else matches no row, so it is refused without a query.
 *
 * @example
 * ```ts
 * isVersion("42"); // true
 * isVersion("not a version"); // false
 * ```
 */
export function isVersion(token: unknown): token is string {
  return typeof token === "string" && /^[0-9]{1,19}$/.test(token) &&
    BigInt(token) <= 0x7fffffffffffffffn;
}
