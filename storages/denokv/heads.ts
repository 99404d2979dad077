/**
 * What `DenoKvStorage` remembers of the heads it has seen, so a write that
 * follows a read of the same key commits at once, checked against the
 * remembered versionstamp, instead of reading the head again first.
 *
 * Remembering is only a guess: every write built on it is checked against
 * the remembered versionstamp in its atomic operation, and a failed check
 * sends the writer back to reading the head from KV. A versionstamp names
 * one write of the head, so while it is current the head is exactly what
 * was remembered with it (its version, its expiry and the chunk generation
 * it points at).
 *
 * @module
 */

import type { KvEntryLike } from "./kv.ts";
import { headOf, isExpired, oldChunksOf } from "./records.ts";

/** What a write needs to know of the head it replaces. */
export interface SeenHead {
  /** The head's versionstamp, `null` when no head is stored. */
  readonly versionstamp: string | null;
  /**
   * The session's version (which a renewal keeps), `null` when no head is
   * stored or it is not one this storage can read.
   */
  readonly ver: string | null;
  /** Its expiry as epoch milliseconds, `null` for none (or no head). */
  readonly exp: number | null;
  /** The generation it points at and its chunk count, if it is chunked. */
  readonly chunks: { readonly gen: string; readonly n: number } | undefined;
}

/** No head stored. */
export const ABSENT: SeenHead = { versionstamp: null, ver: null, exp: null, chunks: undefined };

/**
 * Sums up a head record as KV returned it. A value not written by
 * `DenoKvStorage` counts as a head without a version that never expires and
 * has no chunks (except the chunks a manifest of the old format names).
 *
 * @example
 * ```ts
 * import { seenOf } from "./heads.ts";
 *
 * seenOf({ key: ["s", "42"], value: null, versionstamp: null }).versionstamp; // null
 * ```
 *
 * @param entry The head's entry.
 * @returns What a write needs to know of it.
 */
export function seenOf(entry: KvEntryLike): SeenHead {
  if (entry.value === null) return ABSENT;
  const head = headOf(entry.value);
  return {
    versionstamp: entry.versionstamp,
    ver: head?.ver ?? null,
    exp: head?.exp ?? null,
    chunks: head === undefined
      ? oldChunksOf(entry.value)
      : "gen" in head
      ? { gen: head.gen, n: head.n }
      : undefined,
  };
}

/**
 * Tells whether `seen` is a stored, unexpired session.
 *
 * @example
 * ```ts
 * import { ABSENT, isLive } from "./heads.ts";
 *
 * isLive(ABSENT); // false
 * ```
 *
 * @param seen The head.
 * @returns Whether it is live now.
 */
export function isLive(seen: SeenHead): boolean {
  return seen.versionstamp !== null && !isExpired(seen, Date.now());
}

/**
 * Tells whether the head is version `expected` (`null`: none stored, or it
 * expired). An expired session is no version any more.
 *
 * @example
 * ```ts
 * import { ABSENT, matches } from "./heads.ts";
 *
 * matches(ABSENT, null); // true
 * ```
 *
 * @param seen The head.
 * @param expected The version asked for.
 * @returns Whether it is that version.
 */
export function matches(seen: SeenHead, expected: string | null): boolean {
  if (expected !== null) return seen.ver === expected && isLive(seen);
  return !isLive(seen);
}

/** How many keys a {@link HeadMemory} remembers by default. */
export const REMEMBERED_KEYS = 2048;

/**
 * The heads last seen, per session key, for a bounded number of keys: the
 * least recently seen key is forgotten first. Keeps no session data, only
 * versionstamps, expiry times and generation ids.
 *
 * @example
 * ```ts
 * import { ABSENT, HeadMemory } from "./heads.ts";
 *
 * const memory = new HeadMemory(2);
 * memory.remember("a", ABSENT);
 * memory.recall("a"); // ABSENT
 * ```
 */
export class HeadMemory {
  /** The most keys remembered at once. */
  readonly limit: number;
  readonly #heads = new Map<string, SeenHead>();

  /**
   * Creates an empty memory.
   *
   * @param limit The most keys remembered at once.
   */
  constructor(limit: number = REMEMBERED_KEYS) {
    this.limit = limit;
  }

  /** The number of keys remembered now. */
  get size(): number {
    return this.#heads.size;
  }

  /**
   * The head last seen for `key`, if remembered.
   *
   * @param key The session key.
   * @returns The head, or `undefined`.
   */
  recall(key: string): SeenHead | undefined {
    return this.#heads.get(key);
  }

  /**
   * Remembers the head of `key`, forgetting the least recently seen key
   * when full.
   *
   * @param key The session key.
   * @param seen The head.
   */
  remember(key: string, seen: SeenHead): void {
    this.#heads.delete(key);
    this.#heads.set(key, seen);
    if (this.#heads.size > this.limit) {
      this.#heads.delete(this.#heads.keys().next().value as string);
    }
  }

  /**
   * Forgets the head of `key` (it changed in a way not seen here).
   *
   * @param key The session key.
   */
  forget(key: string): void {
    this.#heads.delete(key);
  }
}
