/**
 * Options of `session()` and `lazySession()`, named as in grammY.
 *
 * @module
 */

import type { Context } from "npm:grammy@^1.46";
import type { MaybePromise, StorageAdapter } from "./storage.ts";

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
export interface SessionOptions<S, C extends Context = Context> {
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
// deno-lint-ignore no-explicit-any
export type MultiSessionOptions<S, C extends Context = Context> = S extends Record<string, any>
  ? { type: "multi" } & { [K in keyof S]: SessionOptions<S[K], C> }
  : never;
