/**
 * The commands in flight on a connection a `RedisStorage` opened itself
 * (`RedisStorage.connect`, `connectCluster`), so that closing it can wait
 * for their replies before tearing it down. node-redis's own graceful
 * `close()` cannot be bounded: once called, the client refuses `destroy()`,
 * so a reply that never comes (a silent server, a half-open connection)
 * left its socket open for good and kept the process alive.
 *
 * @module
 */

import { backgroundTimeout } from "../../src/timers.ts";
import type { MasterNode, RedisCommands } from "./commands.ts";

/**
 * Counts the replies outstanding on one connection.
 *
 * @example
 * ```ts
 * import { InFlight } from "./in_flight.ts";
 *
 * const inFlight = new InFlight();
 * const reply = inFlight.track(Promise.resolve("PONG"));
 * await inFlight.settled(2000); // at once once `reply` settled
 * ```
 */
export class InFlight {
  #count = 0;
  #idle: PromiseWithResolvers<void> | undefined;

  /** Replies outstanding now. */
  get count(): number {
    return this.#count;
  }

  /** Counts `reply` until it settles; returns it. */
  track<T>(reply: Promise<T>): Promise<T> {
    this.#count++;
    const done = () => {
      if (--this.#count > 0 || this.#idle === undefined) return;
      this.#idle.resolve();
      this.#idle = undefined;
    };
    reply.then(done, done);
    return reply;
  }

  /** Resolves once no reply is outstanding, or after `ms`, whichever comes first. */
  settled(ms: number): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    const idle = this.#idle ??= Promise.withResolvers();
    return new Promise((resolve) => {
      const timer = backgroundTimeout(resolve, ms);
      idle.promise.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** `commands` with every reply (routed or to one master) counted by `inFlight`. */
export function trackedCommands(commands: RedisCommands, inFlight: InFlight): RedisCommands {
  return {
    kind: commands.kind,
    cluster: commands.cluster,
    send: (key, args) => inFlight.track(commands.send(key, args)),
    masters: async () =>
      (await commands.masters()).map((master): MasterNode => ({
        id: master.id,
        send: (args) => inFlight.track(master.send(args)),
      })),
  };
}
