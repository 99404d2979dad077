/**
 * Context flavors: the types that add `ctx.session` to your context type.
 *
 * @module
 */

/**
 * Adds a strict session to the context type.
 *
 * @example
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { session, type SessionFlavor } from "@sessionkit/grammy";
 *
 * type MyContext = Context & SessionFlavor<{ count: number }>;
 * const bot = new Bot<MyContext>("token");
 * bot.use(session({ initial: () => ({ count: 0 }) }));
 * bot.on("message", (ctx) => ctx.session.count++);
 * ```
 */
export type SessionFlavor<S> = {
  /** The session data of this update. */
  get session(): S;
  /** Replaces the session data; `null` or `undefined` deletes it. */
  set session(session: S | null | undefined);
  /** The storage key of this update's session, or `undefined` if it has none. */
  sessionKey?: string;
};

/**
 * Adds a lazy session to the context type: storage is read only when a
 * handler first reads `ctx.session`. That first read gives a promise; once
 * the session is loaded (or assigned), `ctx.session` is the value itself,
 * as in grammY. `await ctx.session` works in both cases.
 *
 * @example
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { lazySession, type LazySessionFlavor } from "@sessionkit/grammy";
 *
 * type MyContext = Context & LazySessionFlavor<{ count: number }>;
 * const bot = new Bot<MyContext>("token");
 * bot.use(lazySession({ initial: () => ({ count: 0 }) }));
 * bot.command("count", async (ctx) => {
 *   const data = await ctx.session;
 *   data.count++;
 * });
 * ```
 */
export type LazySessionFlavor<S> = {
  /** The session data once loaded, else a promise of it; the first access reads storage. */
  get session(): S | Promise<S>;
  /** Replaces the session without reading it; `null` or `undefined` deletes it. */
  set session(session: S | null | undefined | Promise<S | null | undefined>);
  /** The storage key of this update's session, or `undefined` if it has none. */
  sessionKey?: string;
};

/**
 * Adds a lazy multi session to the context type: each fragment of
 * `ctx.session` is a promise, read from its storage on first access.
 *
 * @example
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { lazySession, type LazyMultiSessionFlavor } from "@sessionkit/grammy";
 *
 * type Data = { chat: { count: number }; user: { lang: string } };
 * type MyContext = Context & LazyMultiSessionFlavor<Data>;
 * const bot = new Bot<MyContext>("token");
 * bot.use(lazySession({
 *   type: "multi",
 *   chat: { initial: () => ({ count: 0 }) },
 *   user: { initial: () => ({ lang: "en" }) },
 * }));
 * bot.command("count", async (ctx) => {
 *   (await ctx.session.chat).count++; // only the chat fragment is read
 * });
 * ```
 */
export type LazyMultiSessionFlavor<S> = {
  /** One promise per fragment; assign a fragment to replace it without reading. */
  get session(): { [K in keyof S]: S[K] | Promise<S[K]> };
  /** Replaces every fragment; `null` or `undefined` deletes them all. */
  set session(session: { [K in keyof S]?: S[K] | null } | null | undefined);
};
