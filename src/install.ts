/**
 * Puts the session property on a context, refusing to install twice.
 *
 * Every update of one middleware gets the same getter and setter functions;
 * they find the update's own handle on the context under a private symbol.
 * Sharing the accessors keeps contexts on one hidden class in V8, where a
 * pair of fresh closures per update would give every context a new one.
 *
 * @module
 */

import type { SessionContext } from "./context.ts";
import { SessionError } from "./errors.ts";

/** What the session property of one update reads and writes. */
export interface SessionHandle {
  /** The value of the property (strict mode, or a multi session's view). */
  get(): unknown;
  /** A promise of the value (lazy mode). */
  getLazy(): unknown;
  /** Assigns the property. */
  set(value: unknown): void;
}

/** Puts the session property of one middleware on the contexts of its updates. */
export interface Installer {
  /**
   * Throws a clear error if another session middleware already defined the
   * property on this update.
   */
  claim(ctx: SessionContext): void;
  /** Defines the property as an accessor that goes through `handle`. */
  define(ctx: SessionContext, handle: SessionHandle): void;
  /** `claim`, then `define`. */
  install(ctx: SessionContext, handle: SessionHandle): void;
}

/**
 * Makes the installer of `ctx[property]` for one middleware. The accessor
 * reads `handle.getLazy()` when `lazy`, `handle.get()` otherwise.
 */
export function sessionInstaller(property: string, lazy: boolean): Installer {
  const HANDLE = Symbol(`sessionkit ctx.${property}`);
  type Holder = { [HANDLE]: SessionHandle };
  const descriptor: PropertyDescriptor = {
    get: lazy
      ? function (this: Holder) {
        return this[HANDLE].getLazy();
      }
      : function (this: Holder) {
        return this[HANDLE].get();
      },
    set(this: Holder, value: unknown) {
      this[HANDLE].set(value);
    },
    enumerable: true,
    configurable: true,
  };
  const claim = (ctx: SessionContext) => {
    if (Object.hasOwn(ctx, property)) {
      throw new SessionError(
        `ctx.${property} is already defined: a session middleware was installed twice for this ` +
          `update (for example session() and lazySession() both, or session() on the bot and ` +
          `again in a composer). Install one session middleware; to keep several independent ` +
          `pieces of data, use one multi session: session({ type: "multi", ... }).`,
      );
    }
  };
  const define = (ctx: SessionContext, handle: SessionHandle) => {
    (ctx as unknown as Holder)[HANDLE] = handle;
    Object.defineProperty(ctx, property, descriptor);
  };
  return {
    claim,
    define,
    install(ctx, handle) {
      claim(ctx);
      define(ctx, handle);
    },
  };
}
