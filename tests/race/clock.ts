/**
 * The logical clock of one run: every event the runner and the scheduled
 * storage record takes the next tick, so ticks order events exactly as they
 * happened in the (single-threaded) run.
 *
 * @module
 */
export class Clock {
  #now = 0;

  /** The next tick. */
  tick(): number {
    return ++this.#now;
  }

  /** The last tick given out. */
  get now(): number {
    return this.#now;
  }
}
