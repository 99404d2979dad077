/**
 * Options of `RedisStorage` and their checks.
 *
 * @module
 */

/** Options of `RedisStorage`. */
export interface RedisStorageOptions {
  /**
   * Prepended to every session key to form the Redis key. Default
   * `"session:"`. May be empty; then the storage lists every key of the
   * database as a session.
   */
  prefix?: string;
  /**
   * Time to live in milliseconds (a positive number, rounded up to whole
   * milliseconds). Every write sets it and every read renews it. Leave it out
   * for sessions that never expire.
   */
  ttl?: number;
  /**
   * Prepended to a session key to form the Redis key of its lease. Default
   * `"sessionkit-lease:"` followed by the prefix. Must not overlap the
   * prefix (neither may start with the other), so that leases never show up
   * among sessions.
   */
  leasePrefix?: string;
}

/** The options with their defaults, checked. */
export interface ResolvedOptions {
  prefix: string;
  ttl: number | undefined;
  leasePrefix: string;
  /** Why leases cannot be used, when the lease namespace overlaps the sessions'. */
  leaseProblem: string | undefined;
}

/** The prefix used when none is given. */
export const DEFAULT_PREFIX = "session:";
/** What the default lease prefix starts with. */
export const LEASE_NAMESPACE = "sessionkit-lease:";

function overlaps(a: string, b: string): boolean {
  return a.startsWith(b) || b.startsWith(a);
}

/** Checks `options` and fills in the defaults. Throws before anything is opened. */
export function resolveOptions(options: RedisStorageOptions = {}): ResolvedOptions {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  if (typeof prefix !== "string" || !prefix.isWellFormed()) {
    throw new TypeError(
      `RedisStorage: prefix must be a string of well-formed Unicode, got ${String(prefix)}. ` +
        `Pass a string such as "session:" (or "" for none).`,
    );
  }
  let ttl: number | undefined;
  if (options.ttl !== undefined) {
    if (typeof options.ttl !== "number" || !Number.isFinite(options.ttl) || options.ttl <= 0) {
      throw new RangeError(
        `RedisStorage: ttl must be a positive, finite number of milliseconds, got ${
          String(options.ttl)
        }. Leave ttl out for sessions that never expire.`,
      );
    }
    ttl = Math.ceil(options.ttl);
  }
  const explicit = options.leasePrefix !== undefined;
  const leasePrefix = options.leasePrefix ?? LEASE_NAMESPACE + prefix;
  if (typeof leasePrefix !== "string" || !leasePrefix.isWellFormed()) {
    throw new TypeError(
      `RedisStorage: leasePrefix must be a string of well-formed Unicode, got ${
        String(leasePrefix)
      }.`,
    );
  }
  let leaseProblem: string | undefined;
  if (overlaps(prefix, leasePrefix)) {
    leaseProblem = `the lease prefix "${leasePrefix}" overlaps the session prefix "${prefix}", ` +
      `so lease records could collide with sessions or show up in listings`;
    if (explicit) {
      throw new RangeError(
        `RedisStorage: ${leaseProblem}. Pick a leasePrefix that neither starts with the prefix ` +
          `nor is the start of it, e.g. "lease:" with the prefix "session:".`,
      );
    }
  }
  return { prefix, ttl, leasePrefix, leaseProblem };
}

/** Checks a lease TTL and rounds it up to whole milliseconds. */
export function leaseTtl(ttl: number): string {
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0) {
    throw new RangeError(
      `RedisStorage: a lease ttl must be a positive, finite number of milliseconds, got ${
        String(ttl)
      }.`,
    );
  }
  return String(Math.ceil(ttl));
}
