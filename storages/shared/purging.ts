/**
 * When the SQL storages delete expired rows: a bounded batch on the first
 * write and every {@link PURGE_EVERY}th after it, with no timer to keep a
 * process alive, and `purgeExpired(limit)` for a job of the user's own.
 *
 * @module
 */

/** Rows one purge batch deletes at the most. */
export const PURGE_BATCH = 100;
/** Writes between two purge batches. */
export const PURGE_EVERY = 100;

/**
 * Counts a storage's writes and says which of them should run a purge batch.
 *
 * @example
 * ```ts
 * import { PurgeSchedule } from "./purging.ts";
 *
 * const schedule = new PurgeSchedule();
 * schedule.due(); // true: the first write purges
 * schedule.due(); // false
 * ```
 */
export class PurgeSchedule {
  #writes = 0;

  /** Counts one write; whether it should run a purge batch. */
  due(): boolean {
    return this.#writes++ % PURGE_EVERY === 0;
  }

  /** Makes the next write run a batch again (after a batch that failed). */
  again(): void {
    this.#writes = 0;
  }
}

/**
 * Throws unless `limit` is a positive integer (the argument of
 * `purgeExpired`).
 *
 * @example
 * ```ts
 * import { checkPurgeLimit } from "./purging.ts";
 *
 * checkPurgeLimit("MyStorage", 100); // fine
 * ```
 *
 * @param name The storage's name, which starts the error message.
 * @param limit What the user passed.
 */
export function checkPurgeLimit(name: string, limit: unknown): void {
  if (!(Number.isInteger(limit) && (limit as number) > 0)) {
    throw new RangeError(`${name}: purgeExpired needs a positive integer, got ${limit}.`);
  }
}
