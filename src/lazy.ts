/**
 * `lazySession()`: sessions read only when a handler awaits `ctx.session`.
 *
 * @module
 */

import type { SessionContext, SessionMiddleware } from "./context.ts";
import type { MultiSessionOptions, SessionOptions } from "./options.ts";
import type { LazyMultiSessionFlavor, LazySessionFlavor } from "./flavors.ts";
import type { StorageAdapter } from "./storage.ts";
import { singleSession } from "./single.ts";
import { multiSession } from "./multi.ts";
import { resolveSessionArgument } from "./validate.ts";

/**
 * Lazy session middleware: `ctx.session` is a promise of the data, and the
 * storage is read the first time a handler accesses it, once per update. An
 * update that never touches `ctx.session` does no storage I/O at all, and
 * assigning `ctx.session` without reading it does not read either.
 *
 * Accepts the same options as `session()`, a storage adapter alone as a
 * shorthand, and multi sessions (each fragment is read only when accessed),
 * which grammY's `lazySession` refuses. An argument with `read`, `write` and
 * `delete` functions is a storage adapter: `lazySession(storage)` means
 * `lazySession({ storage })`.
 *
 * The argument is checked here, when the middleware is created: an unknown
 * option name, a value of the wrong type, a `Promise` (a forgotten `await`)
 * or a raw `Deno.Kv` (wrap it in `DenoKvStorage`) throws a `TypeError` or
 * `RangeError` that names the fix.
 *
 * @example
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { lazySession, type LazySessionFlavor, MemorySessionStorage } from "@sessionkit/grammy";
 *
 * type MyContext = Context & LazySessionFlavor<{ count: number } | undefined>;
 * const bot = new Bot<MyContext>("token");
 * bot.use(lazySession(new MemorySessionStorage<{ count: number } | undefined>()));
 * bot.command("help", (ctx) => ctx.reply("No storage I/O for this one."));
 * bot.on("message", async (ctx) => {
 *   const data = (await ctx.session) ?? { count: 0 };
 *   data.count++;
 *   ctx.session = data;
 * });
 * ```
 *
 * @param options Options as for `session()`, or a storage adapter.
 * @returns The middleware to pass to `bot.use`.
 */
export function lazySession<S, C extends SessionContext = SessionContext>(
  options?: SessionOptions<S, C> | StorageAdapter<S>,
): SessionMiddleware<C & LazySessionFlavor<S>>;
/**
 * Lazy multi session: each fragment of `ctx.session` is a promise, read from
 * its own storage only when a handler accesses it.
 *
 * @example
 * ```ts
 * import { lazySession } from "@sessionkit/grammy";
 *
 * const middleware = lazySession<{ a: { n: number }; b: { s: string } }>({
 *   type: "multi",
 *   a: { initial: () => ({ n: 0 }) },
 *   b: { initial: () => ({ s: "" }) },
 * });
 * ```
 *
 * @param options One options object per fragment, with `type: "multi"`.
 * @returns The middleware to pass to `bot.use`.
 */
export function lazySession<S, C extends SessionContext = SessionContext>(
  options: MultiSessionOptions<S, C>,
): SessionMiddleware<C & LazyMultiSessionFlavor<S>>;
export function lazySession<S, C extends SessionContext = SessionContext>(
  options?: SessionOptions<S, C> | MultiSessionOptions<S, C> | StorageAdapter<S>,
): SessionMiddleware<C & LazySessionFlavor<S>> | SessionMiddleware<C & LazyMultiSessionFlavor<S>> {
  const resolved = resolveSessionArgument("lazySession()", options);
  return resolved.type === "multi"
    ? multiSession<C & LazyMultiSessionFlavor<S>>(resolved, true)
    : singleSession<S, C>(resolved as SessionOptions<S, C>, true);
}
