/**
 * How long a session of the MySQL/MariaDB storage lives, and when a read
 * renews it.
 *
 * The rule every lazily renewing storage follows (storages/shared/expiry.ts):
 * a write stores an expiry of 1.5 TTLs from now. A read renews it (a second
 * statement, guarded by the version it read) only when less than the TTL is
 * left, back to 1.5 TTLs. So after any read or write the session lives at
 * least the TTL and at most 1.5 TTLs, and a read within half a TTL after a
 * write or renewal is a single `SELECT`: with a 30-day TTL, a session read
 * all day long is renewed once every 15 days.
 *
 * @module
 */

import { LIFETIME } from "../shared/expiry.ts";

/** The parameters of a storage's TTL, in microseconds as statements take them. */
export interface Expiry {
  /** What writes and renewals store: 1.5 TTLs from now. */
  lifetime: string;
  /** A read renews when less than this (the TTL) is left. */
  threshold: string;
}

/**
 * The statement parameters for a TTL in milliseconds, or `undefined` for none.
 *
 * @example
 * ```ts
 * expiryOf(1000); // { lifetime: "1500000", threshold: "1000000" }
 * ```
 */
export function expiryOf(ttl: number | undefined): Expiry | undefined {
  if (ttl === undefined) return undefined;
  return { lifetime: micros(ttl * LIFETIME), threshold: micros(ttl) };
}

/**
 * Milliseconds as whole microseconds in decimal text, at least 1.
 *
 * @example
 * ```ts
 * micros(1.5); // "1500"
 * ```
 */
export function micros(ms: number): string {
  return String(Math.max(1, Math.round(ms * 1000)));
}
