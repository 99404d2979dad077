/**
 * The small structural slice of the Deno KV API that `DenoKvStorage` uses.
 * Both `Deno.Kv` (from `Deno.openKv()`) and the `Kv` of `npm:@deno/kv`
 * satisfy it, so Deno and Node users pass what they already have.
 *
 * @module
 */

/** One part of a KV key, as in `Deno.KvKeyPart`. */
export type KvKeyPartLike = Uint8Array | string | number | bigint | boolean;

/** A KV key: a sequence of key parts, as in `Deno.KvKey`. */
export type KvKeyLike = readonly KvKeyPartLike[];

/** What `get` and `getMany` return for one key. */
export interface KvEntryLike {
  /** The key that was read (typed loosely: `Deno.KvKeyPart` also allows symbols). */
  key: readonly unknown[];
  /** The stored value, or `null` when there is none. */
  value: unknown;
  /** The version of the stored value, or `null` when there is none. */
  versionstamp: string | null;
}

/** What a successful commit returns. */
export interface KvCommitLike {
  /** `true` when the commit was applied. */
  ok: boolean;
  /** The version of the written entries (only when `ok`). */
  versionstamp?: string;
}

/**
 * The part of a KV atomic operation that `DenoKvStorage` uses.
 *
 * @example
 * ```ts
 * import type { KvAtomicLike } from "./kv.ts";
 *
 * async function swap(op: KvAtomicLike): Promise<boolean> {
 *   const res = await op.check({ key: ["a"], versionstamp: null }).set(["a"], 1).commit();
 *   return res.ok;
 * }
 * ```
 */
export interface KvAtomicLike {
  /** Adds a check: the commit fails unless `key` has this versionstamp. */
  check(...checks: { key: KvKeyLike; versionstamp: string | null }[]): KvAtomicLike;
  /** Adds a write of `value` under `key`, optionally expiring after `expireIn` ms. */
  set(key: KvKeyLike, value: unknown, options?: { expireIn?: number }): KvAtomicLike;
  /** Adds a deletion of `key`. */
  delete(key: KvKeyLike): KvAtomicLike;
  /** Applies every mutation if every check passes; `ok: false` otherwise. */
  commit(): Promise<KvCommitLike>;
}

/**
 * A Deno KV database: `Deno.Kv`, or the `Kv` of `npm:@deno/kv` on Node.
 *
 * @example Passing the Kv of npm:@deno/kv
 * ```ts
 * import { openKv } from "npm:@deno/kv@^0.14";
 * import { DenoKvStorage } from "@sessionkit/grammy/denokv";
 *
 * const kv = await openKv("sessions.db");
 * const storage = new DenoKvStorage<{ count: number }>(kv);
 * ```
 */
export interface KvLike {
  /** Reads one key. */
  get(key: KvKeyLike): Promise<KvEntryLike>;
  /** Reads up to 10 keys in one consistent snapshot. */
  getMany(keys: readonly KvKeyLike[]): Promise<KvEntryLike[]>;
  /**
   * Lists the entries whose keys start with `prefix`, in key order, from
   * `start` (inclusive) when given.
   */
  list(
    selector: { prefix: KvKeyLike; start?: KvKeyLike },
    options?: { batchSize?: number; limit?: number },
  ): AsyncIterable<KvEntryLike>;
  /** Starts an atomic operation. */
  atomic(): KvAtomicLike;
}
