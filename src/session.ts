/**
 * `session()`: strict sessions, loaded before your handlers run.
 *
 * @module
 */

import type { SessionContext, SessionMiddleware } from "./context.ts";
import type { MultiSessionOptions, SessionOptions } from "./options.ts";
import type { SessionFlavor } from "./flavors.ts";
import type { StorageAdapter } from "./storage.ts";
import { singleSession } from "./single.ts";
import { multiSession } from "./multi.ts";
import { resolveSessionArgument } from "./validate.ts";

/**
 * Session middleware: before your handlers run it reads the session of the
 * update's key into `ctx.session`; afterwards it writes it back, but only if
 * it changed. A drop-in for grammY's `session()` with the same options.
 *
 * Updates of the same key that run at the same time share one read and one
 * live object, so concurrent changes are not lost, and their writes land in
 * order. An update whose handler throws writes nothing.
 *
 * `session(storage)` is a shorthand for `session({ storage })`: an argument
 * with `read`, `write` and `delete` functions is a storage adapter (options
 * never have those). Without an argument, sessions are kept in memory and
 * lost when the process stops, as in grammY.
 *
 * The argument is checked here, when the middleware is created, not at the
 * first update: an unknown option name (`storge`), a value of the wrong
 * type, a `Promise` (a forgotten `await` on `RedisStorage.connect(...)`), a
 * raw `Deno.Kv` (wrap it in `DenoKvStorage`) or an object with only some of
 * `read`, `write` and `delete` throws a `TypeError` or `RangeError` that
 * names the fix.
 *
 * @example A counter per chat
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { session, type SessionFlavor } from "@sessionkit/grammy";
 *
 * type MyContext = Context & SessionFlavor<{ count: number }>;
 * const bot = new Bot<MyContext>("token");
 * bot.use(session({ initial: () => ({ count: 0 }) }));
 * bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.count}`));
 * ```
 *
 * @example A multi session with a fragment per chat and one per user
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { perUser, session, type SessionFlavor } from "@sessionkit/grammy";
 *
 * type Data = { chat: { count: number }; user: { lang: string } };
 * const bot = new Bot<Context & SessionFlavor<Data>>("token");
 * bot.use(session({
 *   type: "multi",
 *   chat: { initial: () => ({ count: 0 }) },
 *   user: { initial: () => ({ lang: "en" }), getSessionKey: perUser },
 * }));
 * ```
 *
 * @example A storage adapter alone: `session(storage)`
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { session, type SessionFlavor } from "@sessionkit/grammy";
 * import { RedisStorage } from "@sessionkit/grammy/redis";
 *
 * type Data = { count: number };
 * const storage = await RedisStorage.connect<Data>("redis://127.0.0.1:6379");
 * // No initial value: a chat with nothing stored has no session yet.
 * const bot = new Bot<Context & SessionFlavor<Data | undefined>>("token");
 * bot.use(session<Data | undefined>(storage));
 * bot.command("count", (ctx) => {
 *   const count = (ctx.session?.count ?? 0) + 1;
 *   ctx.session = { count };
 *   return ctx.reply(`Count: ${count}`);
 * });
 * ```
 *
 * @param options Where and how to keep sessions (see {@link SessionOptions}),
 *   or a storage adapter alone.
 * @returns The middleware to pass to `bot.use`.
 */
export function session<S, C extends SessionContext = SessionContext>(
  options?: SessionOptions<S, C> | MultiSessionOptions<S, C> | StorageAdapter<S>,
): SessionMiddleware<C & SessionFlavor<S>> {
  const resolved = resolveSessionArgument("session()", options);
  return resolved.type === "multi"
    ? multiSession(resolved, false)
    : singleSession(resolved as SessionOptions<S, C>, false);
}
