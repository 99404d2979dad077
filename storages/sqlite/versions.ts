/**
 * Version tokens of the SQLite storage: the `version` column.
 *
 * The writer draws the new version itself, 96 random bits as 24 hex digits,
 * and sends it with the write; whether a conditional write landed is then
 * told by `changes` alone, and a write and its new version are one
 * statement. A stale version matches again only if a later write draws the
 * very same token: about 1 in 8 × 10^28 per write.
 *
 * @module
 */

const draw = new Uint8Array(12);

/**
 * A fresh version token.
 *
 * @example
 * ```ts
 * newVersion().length; // 24
 * ```
 */
export function newVersion(): string {
  crypto.getRandomValues(draw);
  let out = "";
  for (const byte of draw) out += byte.toString(16).padStart(2, "0");
  return out;
}
