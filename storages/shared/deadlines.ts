/**
 * One timer for every call racing the same bound. A timer of its own for
 * each call of a storage (a `setTimeout` armed and cleared per read or
 * write) cost about 11 µs of CPU per call under Deno, a tenth of a Redis
 * round trip on loopback (bench/timeout_cost.ts). Calls bounded by the same
 * number of ms reach their deadlines in the order they started, so one list
 * in start order and one timer, armed for the oldest call's deadline, watch
 * all of them: a call that settles leaves the list, and when the timer
 * fires, the calls whose deadline has come are given up and the timer is
 * armed again for the oldest call left. No call is given up before its
 * bound nor noticed later than one would be by a timer of its own.
 *
 * @module
 */

import { backgroundTimeout, type TimerId } from "../../src/timers.ts";

/** A call being watched: `expire` gives it up; `done` takes it off the watch. */
export interface Watch {
  /** Stops watching (the call settled). */
  done(): void;
}

interface Entry extends Watch {
  deadline: number;
  expire: () => void;
}

/**
 * Calls bounded by the same `ms`, watched by one timer that never keeps the
 * process alive.
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 *
 * const deadlines = new Deadlines(5000);
 * const watch = deadlines.watch(() => console.log("given up"));
 * // ... the call settles in time:
 * watch.done();
 * ```
 */
export class Deadlines {
  /** Calls in the order they started, so in the order of their deadlines. */
  readonly #pending = new Set<Entry>();
  #timer: TimerId | undefined;

  /** @param ms The bound of every call watched here, in ms (finite). */
  constructor(readonly ms: number) {}

  /** Watches a call that starts now: `expire` runs once its bound has passed. */
  watch(expire: () => void): Watch {
    const pending = this.#pending;
    const entry: Entry = {
      deadline: performance.now() + this.ms,
      expire,
      done: () => void pending.delete(entry),
    };
    pending.add(entry);
    if (this.#timer === undefined) this.#arm(entry.deadline);
    return entry;
  }

  /** Calls being watched now (for tests). */
  get size(): number {
    return this.#pending.size;
  }

  #arm(deadline: number): void {
    this.#timer = backgroundTimeout(
      () => this.#fire(),
      Math.max(0, Math.ceil(deadline - performance.now())),
    );
  }

  #fire(): void {
    this.#timer = undefined;
    const now = performance.now();
    for (const entry of this.#pending) {
      if (entry.deadline > now) return this.#arm(entry.deadline);
      this.#pending.delete(entry);
      try {
        entry.expire();
      } catch {
        // One call's failure to give up leaves the others watched.
      }
    }
  }
}
