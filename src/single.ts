/**
 * The middleware of a single (non-multi) session, strict or lazy.
 *
 * @module
 */

import type { SessionContext, SessionMiddleware } from "./context.ts";
import type { SessionOptions } from "./options.ts";
import { Fragment } from "./fragment.ts";
import { sessionInstaller } from "./install.ts";

/** Builds the middleware of a single session. */
export function singleSession<S, C extends SessionContext>(
  options: SessionOptions<S, C>,
  lazy: boolean,
): SessionMiddleware<C> {
  const fragment = new Fragment<S, C>(options, "session");
  const install = sessionInstaller("session", lazy);
  return async (ctx, next) => {
    const found = fragment.key(ctx);
    const key = typeof found === "object" ? await found : found;
    install.claim(ctx);
    const binding = fragment.bind(key, ctx);
    (ctx as { sessionKey?: string }).sessionKey = key;
    if (!lazy && key !== undefined) {
      try {
        const loading = binding.load();
        if (loading !== undefined) await loading;
      } catch (err) {
        await binding.finish(false);
        throw err;
      }
    }
    install.define(ctx, binding);
    try {
      await next();
    } catch (err) {
      await binding.finish(false);
      throw err;
    }
    // Awaits only what is pending: with the memory storage nothing is.
    const finishing = binding.finish(true);
    if (finishing !== undefined) await finishing;
  };
}
