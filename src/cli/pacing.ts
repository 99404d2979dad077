/**
 * Letting the event loop run during a long command. A SQLite storage
 * answers synchronously, so a copy between two of them would otherwise run
 * from start to end without ever giving timers and signals a turn: no
 * progress would be drawn and Ctrl-C would wait for the end. The source's
 * listing is therefore paced: every `every` sessions it waits for one turn
 * of the event loop (a timer of 0 ms), which costs about a millisecond per
 * batch.
 *
 * @module
 */

import type { StorageAdapter } from "../storage.ts";

/** One turn of the event loop. */
function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** `listing`, waiting for a turn of the event loop every `every` elements. */
async function* paced<E>(
  listing: Iterable<E> | AsyncIterable<E>,
  every: number,
): AsyncGenerator<E> {
  let n = 0;
  for await (const element of listing) {
    if (++n % every === 0) await turn();
    yield element;
  }
}

/**
 * `storage` with its listings (`readAllKeys`, `readAllValues`,
 * `readAllEntries`) paced; every other property is the storage's own.
 *
 * @example
 * ```ts
 * import { MemorySessionStorage } from "../../storages/memory.ts";
 * import { pacedListings } from "./pacing.ts";
 *
 * const storage = pacedListings(new MemorySessionStorage(), 100);
 * for await (const key of storage.readAllKeys!()) console.log(key);
 * ```
 */
export function pacedListings<T>(storage: StorageAdapter<T>, every: number): StorageAdapter<T> {
  const listings = new Set(["readAllKeys", "readAllValues", "readAllEntries"]);
  return new Proxy(storage, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof name !== "string" || !listings.has(name) || typeof value !== "function") {
        return typeof value === "function" ? value.bind(target) : value;
      }
      return () => paced(value.call(target), every);
    },
  });
}
