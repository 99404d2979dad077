/**
 * Puts the session property on a context, refusing to install twice.
 *
 * @module
 */

import type { SessionContext } from "./context.ts";
import { SessionError } from "./errors.ts";

/**
 * Defines `ctx[property]` with the given accessors. Throws a clear error if
 * another session middleware already defined it on this update.
 */
export function defineSessionProperty(
  ctx: SessionContext,
  property: string,
  get: () => unknown,
  set: (value: unknown) => void,
): void {
  if (Object.getOwnPropertyDescriptor(ctx, property) !== undefined) {
    throw new SessionError(
      `ctx.${property} is already defined: a session middleware was installed twice for this ` +
        `update (for example session() and lazySession() both, or session() on the bot and again ` +
        `in a composer). Install one session middleware; to keep several independent pieces of ` +
        `data, use one multi session: session({ type: "multi", ... }).`,
    );
  }
  Object.defineProperty(ctx, property, { get, set, enumerable: true, configurable: true });
}
