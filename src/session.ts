/**
 * `session()`: strict sessions, loaded before your handlers run.
 *
 * @module
 */

import type { SessionContext, SessionMiddleware } from "./context.ts";
import type { MultiSessionOptions, SessionOptions } from "./options.ts";
import type { SessionFlavor } from "./flavors.ts";
import { singleSession } from "./single.ts";
import { multiSession } from "./multi.ts";

/**
 * Session middleware: before your handlers run it reads the session of the
 * update's key into `ctx.session`; afterwards it writes it back, but only if
 * it changed. A drop-in for grammY's `session()` with the same options.
 *
 * Updates of the same key that run at the same time share one read and one
 * live object, so concurrent changes are not lost, and their writes land in
 * order. An update whose handler throws writes nothing.
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
 * @param options Where and how to keep sessions; see {@link SessionOptions}.
 * @returns The middleware to pass to `bot.use`.
 */
export function session<S, C extends SessionContext = SessionContext>(
  options?: SessionOptions<S, C> | MultiSessionOptions<S, C>,
): SessionMiddleware<C & SessionFlavor<S>> {
  return options?.type === "multi"
    ? multiSession(options as Record<string, unknown>, false)
    : singleSession(options as SessionOptions<S, C> ?? {}, false);
}
