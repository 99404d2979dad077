/**
 * The few things sessionkit needs from a grammY context and a middleware,
 * typed structurally so the public API does not depend on grammY's classes.
 * grammY's `Context` and `MiddlewareFn` fit them.
 *
 * @module
 */

/**
 * What sessionkit reads from a context: the update (for error messages) and
 * what the shipped key strategies use. grammY's `Context` has all of it.
 *
 * @example
 * ```ts
 * import type { Context } from "npm:grammy@^1.46";
 * import type { SessionContext } from "@sessionkit/grammy";
 *
 * const fits = (ctx: Context): SessionContext => ctx;
 * ```
 */
export interface SessionContext {
  /** The incoming update. */
  readonly update: object;
  /** The chat of the update, if any. */
  readonly chatId?: number | undefined;
  /** The sender of the update, if any. */
  readonly from?: { readonly id: number } | undefined;
  /** The message of the update, if any. */
  readonly msg?:
    | { readonly message_thread_id?: number; readonly is_topic_message?: boolean }
    | undefined;
}

/**
 * A middleware function as grammY's `bot.use` takes it.
 *
 * @example
 * ```ts
 * import type { Context } from "npm:grammy@^1.46";
 * import type { SessionMiddleware } from "@sessionkit/grammy";
 *
 * const log: SessionMiddleware<Context> = async (ctx, next) => {
 *   console.log(ctx.update.update_id);
 *   await next();
 * };
 * ```
 */
export type SessionMiddleware<C> = (ctx: C, next: () => Promise<void>) => Promise<void>;
