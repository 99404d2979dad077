/**
 * Version tokens kept in a signed 64-bit integer column (PostgreSQL's
 * `bigint`, MySQL's `BIGINT`): a random number in 0 .. 2^63 - 1, drawn by
 * the writer and sent with the write, as decimal text.
 *
 * Because the writer picks the version, a conditional write learns whether
 * it landed from the row count alone and needs no `RETURNING` row. A stale
 * reader's version comes back only if a later write draws the very same
 * number: about 1 in 10^19 per write.
 *
 * @module
 */

const draw = new BigUint64Array(1);

/**
 * A fresh version token: a random integer in 0 .. 2^63 - 1, as decimal text.
 *
 * @example
 * ```ts
 * import { isVersion, newVersion } from "./bigint_versions.ts";
 *
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
 * import { isVersion } from "./bigint_versions.ts";
 *
 * isVersion("42"); // true
 * isVersion("not a version"); // false
 * ```
 */
export function isVersion(token: unknown): token is string {
  return typeof token === "string" && /^[0-9]{1,19}$/.test(token) &&
    BigInt(token) <= 0x7fffffffffffffffn;
}
