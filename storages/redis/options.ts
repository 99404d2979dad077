/**
 * Options of `RedisStorage` and `RedisStorage.connect`, and their checks.
 *
 * @module
 */

import { checkOptionNames, checkTimeout, checkTtl } from "../shared/options.ts";

/**
 * Options of `RedisStorage`.
 *
 * @example
 * ```ts
 * import { RedisStorage, type RedisStorageOptions } from "@sessionkit/grammy/redis";
 *
 * const options: RedisStorageOptions = { prefix: "mybot:", ttl: 24 * 60 * 60 * 1000 };
 * const storage = await RedisStorage.connect("redis://127.0.0.1:6379", options);
 * await storage.close();
 * ```
 */
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
   * for sessions that never expire: then every read or write also removes
   * an expiry that an earlier configuration left on the session.
   */
  ttl?: number;
  /**
   * Prepended to a session key to form the Redis key of its lease. Default
   * `"sessionkit-lease:"` followed by the prefix. Must not overlap the
   * prefix (neither may start with the other), so that leases never show up
   * among sessions.
   */
  leasePrefix?: string;
  /**
   * How long one operation (a read, a write, a lease call, a page of a
   * listing) may take, in milliseconds, before it fails with a
   * `SessionError` that names it; the update using it then fails instead of
   * hanging while the server is silent (stopped, overloaded, cut off). A
   * write given up this way may still land later. `RedisStorage.connect`
   * and `connectCluster` bound connecting by it too (a server that accepts
   * the connection and never answers makes them reject). Default 10 000;
   * `Infinity` for no bound. node-redis has no timeout per command, so the
   * command may stay queued in the client until the server answers.
   */
  timeout?: number;
}

/**
 * Options of `RedisStorage.connect`: the storage options plus an error
 * callback. For any other client option (TLS, timeouts, an offline queue
 * policy, ...), create the client yourself with `createClient` from
 * `npm:redis` and pass it to the constructor.
 *
 * @example
 * ```ts
 * import { type RedisConnectOptions, RedisStorage } from "@sessionkit/grammy/redis";
 *
 * const options: RedisConnectOptions = {
 *   prefix: "mybot:",
 *   ttl: 7 * 24 * 60 * 60 * 1000,
 *   onError: (err) => console.warn("Redis connection trouble:", err.message),
 * };
 * const storage = await RedisStorage.connect("redis://127.0.0.1:6379", options);
 * await storage.close();
 * ```
 */
export interface RedisConnectOptions extends RedisStorageOptions {
  /**
   * Called with every error the client reports once connected (a dropped
   * connection, a failed reconnect). The client reconnects by itself,
   * backing off up to 2 seconds between attempts. Default: one
   * `console.error` line when the connection is lost and one when it is
   * back (with how long it was down and how many attempts failed), no stack
   * traces. A server that cannot be reached at first makes
   * `connect` reject instead.
   */
  onError?: (error: Error) => void;
}

/** The options with their defaults, checked. */
export interface ResolvedOptions {
  prefix: string;
  ttl: number | undefined;
  leasePrefix: string;
  /** The bound of one operation in ms, `Infinity` for none. */
  timeout: number;
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
  checkOptionNames("RedisStorage", options, ["prefix", "ttl", "leasePrefix", "timeout"]);
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  if (typeof prefix !== "string" || !prefix.isWellFormed()) {
    throw new TypeError(
      `RedisStorage: prefix must be a string of well-formed Unicode, got ${String(prefix)}. ` +
        `Pass a string such as "session:" (or "" for none).`,
    );
  }
  const given = checkTtl("RedisStorage", options.ttl);
  const ttl = given === undefined ? undefined : Math.ceil(given);
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
  const timeout = checkTimeout("RedisStorage", options.timeout);
  return { prefix, ttl, leasePrefix, timeout, leaseProblem };
}
