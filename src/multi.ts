/**
 * The middleware of a multi session: several fragments on `ctx.session`, each
 * with its own storage, key, prefix and initial value, strict or lazy.
 *
 * @module
 */

import type { SessionContext, SessionMiddleware } from "./context.ts";
import type { SessionOptions } from "./options.ts";
import { Fragment } from "./fragment.ts";
import type { Binding } from "./binding.ts";
import { sessionInstaller } from "./install.ts";
import { messageOf, SessionError } from "./errors.ts";
import { isPromiseLike } from "./values.ts";

/** Runs `step`, turning a synchronous throw into a rejection. */
async function settle(step: () => Promise<void> | undefined): Promise<void> {
  await step();
}

async function finishAll(bindings: Binding<unknown>[], ok: boolean): Promise<void> {
  const results = await Promise.allSettled(bindings.map((b) => settle(() => b.finish(ok))));
  const errors = results.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) {
    throw new SessionError(
      `${errors.length} session fragments could not be saved: ` +
        errors.map(messageOf).join(" | "),
      undefined,
      { cause: new AggregateError(errors) },
    );
  }
}

/** Builds the middleware of a multi session. */
export function multiSession<C extends SessionContext>(
  options: Record<string, unknown>,
  lazy: boolean,
): SessionMiddleware<C> {
  const names = Object.keys(options).filter((name) => name !== "type");
  const fragments = names.map((name) =>
    new Fragment<unknown, C>(options[name] as SessionOptions<unknown, C>, `session.${name}`)
  );
  const install = sessionInstaller("session", false);
  return async (ctx, next) => {
    const keys = await Promise.all(fragments.map((f) => f.key(ctx)));
    const bindings = fragments.map((f, i) => f.bind(keys[i], ctx));
    const view: Record<string, unknown> = {};
    names.forEach((name, i) => {
      const binding = bindings[i];
      Object.defineProperty(view, name, {
        get: lazy ? () => binding.getLazy() : () => binding.get(),
        set: (value) => binding.set(value),
        enumerable: true,
      });
    });
    const get = () => view;
    install.install(ctx, {
      get,
      getLazy: get,
      set: (value) => {
        if (isPromiseLike(value)) {
          // Each fragment is assigned its part once the promise settles.
          const whole = Promise.resolve(value) as Promise<Record<string, unknown> | null>;
          bindings.forEach((binding, i) => {
            if (binding.key !== undefined) binding.set(whole.then((v) => v?.[names[i]]));
          });
          return;
        }
        const whole = value as Record<string, unknown> | null | undefined;
        // Fragments without a key for this update have nothing to delete, and
        // a part for one of them fails before any fragment is assigned.
        const parts = bindings.map((binding, i) => {
          const part = whole?.[names[i]];
          if (binding.key === undefined && part != null) binding.set(part); // throws
          return part;
        });
        bindings.forEach((binding, i) => {
          if (binding.key !== undefined) binding.set(parts[i]);
        });
      },
    });
    if (!lazy) {
      // Locked fragments take their leases one after another, in the order
      // of the options, so that two processes never wait for each other's
      // leases; the others are read meanwhile.
      const keyed = bindings.filter((b) => b.key !== undefined);
      const loads = keyed.filter((b) => !b.locked).map((b) => settle(() => b.load()));
      const locked = keyed.filter((b) => b.locked);
      if (locked.length > 0) {
        loads.push((async () => {
          for (const b of locked) await b.load();
        })());
      }
      const results = await Promise.allSettled(loads);
      const failed = results.find((r) => r.status === "rejected");
      if (failed !== undefined) {
        await finishAll(bindings, false);
        throw failed.reason;
      }
    }
    try {
      await next();
    } catch (err) {
      await finishAll(bindings, false);
      throw err;
    }
    await finishAll(bindings, true);
  };
}
