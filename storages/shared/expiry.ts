/**
 * When a session of a lazily renewing storage expires. Storages where a
 * renewal costs a write of its own (the SQL storages, Deno KV) write the
 * expiry {@link LIFETIME} TTLs ahead and renew it on read only once less
 * than one TTL is left. A session then lives at least one TTL after its last
 * read or write, as with a storage that renews on every read, and at most
 * {@link LIFETIME} TTLs; a session read often is rewritten at most once per
 * half TTL.
 *
 * @module
 */

/** How far ahead, in TTLs, a lazily renewing storage writes an expiry. */
export const LIFETIME = 1.5;

/**
 * The expiry to store with a write: `null` for none.
 *
 * @example
 * ```ts
 * import { expiryOfWrite } from "./expiry.ts";
 *
 * expiryOfWrite(1000, 0); // 1500
 * expiryOfWrite(undefined, 0); // null
 * ```
 *
 * @param ttl The storage's time to live in ms, if any.
 * @param now The time, epoch ms.
 */
export function expiryOfWrite(ttl: number | undefined, now: number): number | null {
  return ttl === undefined ? null : now + ttl * LIFETIME;
}

/**
 * The expiry a read should give a session whose expiry is `exp`
 * (`null`: none): `undefined` when it keeps the one it has.
 *
 * @example
 * ```ts
 * import { expiryOfRead } from "./expiry.ts";
 *
 * expiryOfRead(1000, 1400, 0); // undefined: more than a TTL is left
 * expiryOfRead(1000, 900, 0); // 1500
 * expiryOfRead(undefined, 900, 0); // null: the TTL was turned off
 * ```
 *
 * @param ttl The storage's time to live in ms, if any.
 * @param exp The stored expiry, epoch ms, or `null`.
 * @param now The time, epoch ms.
 */
export function expiryOfRead(
  ttl: number | undefined,
  exp: number | null,
  now: number,
): number | null | undefined {
  if (ttl === undefined) return exp === null ? undefined : null;
  if (exp !== null && exp - now >= ttl) return undefined;
  return now + ttl * LIFETIME;
}
