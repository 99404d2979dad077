/**
 * The storage adapter interface: the same shape as grammY's `StorageAdapter`,
 * so adapters written for grammY work here unchanged and the other way round.
 *
 * @module
 */

/** A value, or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Where sessions live. `read` returns `undefined` (or `null`) when there is no
 * session for the key; `write` replaces the stored session; `delete` removes
 * it. The listing methods are optional.
 *
 * Every storage shipped with sessionkit follows the serialization contract
 * (see the README): values are JSON data, stored as the JSON text that
 * `JSON.stringify` gives, so the same bytes mean the same session everywhere.
 *
 * @example A minimal adapter over a `Map`
 * ```ts
 * import type { StorageAdapter } from "@sessionkit/grammy";
 *
 * const map = new Map<string, string>();
 * const storage: StorageAdapter<{ count: number }> = {
 *   read: (key) => {
 *     const text = map.get(key);
 *     return text === undefined ? undefined : JSON.parse(text);
 *   },
 *   write: (key, value) => void map.set(key, JSON.stringify(value)),
 *   delete: (key) => void map.delete(key),
 * };
 * ```
 */
export interface StorageAdapter<T> {
  /** Returns the session stored under `key`, or `undefined` if there is none. */
  read: (key: string) => MaybePromise<T | undefined>;
  /** Stores `value` under `key`, replacing what was there. */
  write: (key: string, value: T) => MaybePromise<void>;
  /** Removes the session stored under `key`; a missing key is not an error. */
  delete: (key: string) => MaybePromise<void>;
  /** Tells whether a session is stored under `key`. */
  has?: (key: string) => MaybePromise<boolean>;
  /** Lists the keys of all stored sessions. */
  readAllKeys?: () => Iterable<string> | AsyncIterable<string>;
  /** Lists all stored sessions. */
  readAllValues?: () => Iterable<T> | AsyncIterable<T>;
  /** Lists all stored sessions with their keys. */
  readAllEntries?: () =>
    | Iterable<[key: string, value: T]>
    | AsyncIterable<[key: string, value: T]>;
}
