/**
 * Options of `session()` and `lazySession()`, named as in grammY.
 *
 * @module
 */

import type { SessionContext } from "./context.ts";
import type { MaybePromise, StorageAdapter } from "./storage.ts";
import type { LockOptions } from "./lease.ts";

export type { LockOptions } from "./lease.ts";

/**
 * Merges a conflicting change: `stored` is what another process saved,
 * `mine` what this update wants to save, `base` what this update read.
 * Return the session to save (`undefined` deletes it).
 *
 * @example Adding up the increments of a counter
 * ```ts
 * import type { ConflictMerge } from "@sessionkit/grammy";
 *
 * type Data = { count: number };
 * const merge: ConflictMerge<Data> = (stored, mine, base) => ({
 *   count: (stored?.count ?? 0) + mine!.count - (base?.count ?? 0),
 * });
 * ```
 */
export type ConflictMerge<S> = (
  stored: S | undefined,
  mine: S | undefined,
  base: S | undefined,
) => S | undefined;

/**
 * Options of a single session (one piece of data on `ctx.session`).
 *
 * @example
 * ```ts
 * import { MemorySessionStorage, type SessionOptions } from "@sessionkit/grammy";
 *
 * const options: SessionOptions<{ count: number }> = {
 *   initial: () => ({ count: 0 }),
 *   prefix: "counter:",
 *   storage: new MemorySessionStorage(),
 * };
 * ```
 */
export interface SessionOptions<S, C extends SessionContext = SessionContext> {
  /** `"single"` (the default); multi sessions use {@link MultiSessionOptions}. */
  type?: "single";
  /**
   * Creates the session of a key that has none stored. Called for every such
   * update, so return a new object each time. Without it, `ctx.session` is
   * `undefined` until you assign it.
   */
  initial?: () => S;
  /** Put in front of every key before it reaches the storage. Default `""`. */
  prefix?: string;
  /**
   * Picks the session key of an update; `undefined` means "no session". The
   * default is the chat id, as in grammY (see `perChat`, `perUser`, ...).
   */
  getSessionKey?: (ctx: Omit<C, "session">) => MaybePromise<string | undefined>;
  /** Where sessions live. Default: a new `MemorySessionStorage`. */
  storage?: StorageAdapter<S>;
  /**
   * What to do when another process changed the session after this update
   * read it. Only storages with conditional writes can tell (all sessionkit
   * storages can; for them the default is `"error"`, for others detection is
   * off). `"error"` fails the update with a `SessionConflictError`; a merge
   * function combines both changes and is retried up to
   * `maxConflictRetries` times; `"overwrite"` turns detection off (last write
   * wins, as in grammY).
   */
  onConflict?: "error" | "overwrite" | ConflictMerge<S>;
  /** How often a merge is retried before the update fails. Default 5. */
  maxConflictRetries?: number;
  /**
   * Per-key locking across processes (opt-in): updates of one key run one at
   * a time, serialized by a lease held in the storage itself. Needs a storage
   * with leases (every sessionkit storage has them).
   */
  lock?: LockOptions;
}

/**
 * Options of a multi session: one {@link SessionOptions} object per fragment,
 * each with its own storage, initial value, key and prefix.
 *
 * @example
 * ```ts
 * import { type MultiSessionOptions, perUser } from "@sessionkit/grammy";
 *
 * type Data = { chat: { count: number }; user: { lang: string } };
 * const options: MultiSessionOptions<Data> = {
 *   type: "multi",
 *   chat: { initial: () => ({ count: 0 }) },
 *   user: { initial: () => ({ lang: "en" }), getSessionKey: perUser },
 * };
 * ```
 */
export type MultiSessionOptions<S, C extends SessionContext = SessionContext> =
  // deno-lint-ignore no-explicit-any
  S extends Record<string, any> ? { type: "multi" } & { [K in keyof S]: SessionOptions<S[K], C> }
    : never;
