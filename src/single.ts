/**
 * The middleware of a single (non-multi) session, strict or lazy.
 *
 * @module
 */

import type { SessionContext, SessionMiddleware } from "./context.ts";
import type { SessionOptions } from "./options.ts";
import { Fragment } from "./fragment.ts";
import { sessionInstaller } from "./install.ts";
import { isPromiseLike } from "./values.ts";

/** Builds the middleware of a single session. */
export function singleSession<S, C extends SessionContext>(
  options: SessionOptions<S, C>,
  lazy: boolean,
): SessionMiddleware<C> {
  const fragment = new Fragment<S, C>(options, "session");
  const install = sessionInstaller("session", lazy);

  // Awaits only what is really pending: with a synchronous storage (memory)
  // the only await of an update is the one on `next()`.
  async function run(ctx: C, next: () => Promise<void>, key: string | undefined): Promise<void> {
    const binding = fragment.bind(key, ctx);
    const strict = !lazy && key !== undefined;
    if (strict) install.claim(ctx);
    else install.install(ctx, binding); // lazy, or a read must throw a key error
    (ctx as { sessionKey?: string }).sessionKey = key;
    try {
      if (strict) {
        const loading = binding.load();
        if (loading !== undefined) await loading;
        binding.present(install);
      }
      await next();
    } catch (err) {
      const failing = binding.finish(false);
      if (failing !== undefined) await failing;
      throw err;
    }
    const saving = binding.finish(true);
    if (saving !== undefined) await saving;
  }

  return (ctx, next) => {
    let key: string | undefined | Promise<string | undefined>;
    try {
      key = fragment.key(ctx);
    } catch (err) {
      return Promise.reject(err);
    }
    return isPromiseLike<string | undefined>(key)
      ? Promise.resolve(key).then((k) => run(ctx, next, k))
      : run(ctx, next, key);
  };
}
