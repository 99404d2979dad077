/**
 * What the memory driver remembers of the sessions `maxEntries` evicted:
 * the key and the version, never the data, for the most recent evictions
 * only, so that memory stays bounded.
 *
 * Eviction is not a change: an update that read a session before it was
 * evicted may still save it, as long as nothing was written to or deleted
 * from that key since. The driver asks {@link Evictions.versionOf} when a
 * conditional write or delete finds the key missing.
 *
 * @module
 */

/** The fewest evictions remembered, whatever `maxEntries` is. */
export const MIN_REMEMBERED = 1024;

/**
 * The versions of the last `limit` evicted sessions, in a ring: each
 * eviction takes the next slot and forgets what the slot held before, so
 * every call is O(1) and at most `limit` keys are remembered.
 *
 * @example
 * ```ts
 * import { Evictions } from "./evictions.ts";
 *
 * const evictions = new Evictions(2);
 * evictions.remember("a", "1");
 * console.log(evictions.versionOf("a")); // "1"
 * evictions.forget("a"); // a write or a delete of "a" landed
 * console.log(evictions.versionOf("a")); // undefined
 * ```
 */
export class Evictions {
  /** Evicted key → its version when evicted, while nothing changed it since. */
  readonly #versions = new Map<string, string>();
  /** The ring of the last evictions: key and version at the same index. */
  readonly #keys: string[] = [];
  readonly #tokens: string[] = [];
  readonly #limit: number;
  #next = 0;

  /** Remembers at most `limit` evictions. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Whether nothing is remembered (so nothing needs forgetting). */
  get empty(): boolean {
    return this.#versions.size === 0;
  }

  /** Records that `key` was evicted at `version`. */
  remember(key: string, version: string): void {
    const slot = this.#next;
    this.#next = slot + 1 === this.#limit ? 0 : slot + 1;
    if (slot < this.#keys.length) {
      const old = this.#keys[slot];
      // Versions are never reused: a later eviction of the same key stays.
      if (this.#versions.get(old) === this.#tokens[slot]) this.#versions.delete(old);
    }
    this.#keys[slot] = key;
    this.#tokens[slot] = version;
    this.#versions.set(key, version);
  }

  /** The version `key` had when it was evicted, unless it changed since. */
  versionOf(key: string): string | undefined {
    return this.#versions.get(key);
  }

  /** Forgets `key`: a write or delete landed on it after its eviction. */
  forget(key: string): void {
    this.#versions.delete(key);
  }
}
