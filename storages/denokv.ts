/**
 * `DenoKvStorage`: sessions in Deno KV, locally (`Deno.openKv()` is an
 * embedded SQLite database), on Deno Deploy, and on Node through the `Kv` of
 * `npm:@deno/kv`.
 *
 * - Sessions of any size: above KV's 64 KiB value limit a session is split
 *   into chunks, and readers see either the old or the new session, never a
 *   mix.
 * - TTL with sliding expiry: KV's native `expireIn` plus an expiry time
 *   checked on every read, since KV removes expired keys lazily. Without a
 *   TTL, a read or write clears an expiry left from an earlier configuration.
 * - Versions that only writes change: renewing the expiry keeps them, so a
 *   read in one process never makes another process's conditional write fail.
 * - Unconditional writes are last-write-wins and succeed however many
 *   processes write the same key.
 * - Conflict detection (`readVersioned`, `writeIfVersion`, `deleteIfVersion`)
 *   and leases (`acquireLease`, `renewLease`, `releaseLease`) for bots that
 *   run in several processes.
 *
 * @example A lazy session kept in Deno KV for a week of inactivity
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { lazySession, type LazySessionFlavor } from "@sessionkit/grammy";
 * import { DenoKvStorage } from "@sessionkit/grammy/denokv";
 *
 * type MyContext = Context & LazySessionFlavor<{ count: number }>;
 * const bot = new Bot<MyContext>("token");
 * const kv = await Deno.openKv();
 * bot.use(lazySession({
 *   initial: () => ({ count: 0 }),
 *   storage: new DenoKvStorage(kv, { ttl: 7 * 24 * 60 * 60 * 1000 }),
 * }));
 * ```
 *
 * @module
 */

import { AsyncDriverStorage } from "./shared/async_driver_storage.ts";
import { KvDriver } from "./denokv/driver.ts";
import type { KvKeyPartLike, KvLike } from "./denokv/kv.ts";

export type {
  KvAtomicLike,
  KvCommitLike,
  KvEntryLike,
  KvKeyLike,
  KvKeyPartLike,
  KvLike,
} from "./denokv/kv.ts";
export { KV_LIMITS } from "./denokv/limits.ts";
// Re-exported so this entry point documents itself on its own.
export { AsyncDriverStorage } from "./shared/async_driver_storage.ts";
export { DriverStorage } from "./shared/driver_storage.ts";
export type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";
export type { MaybePromise, StorageAdapter } from "../src/storage.ts";

/**
 * Options of {@link DenoKvStorage}.
 *
 * @example
 * ```ts
 * import type { DenoKvStorageOptions } from "@sessionkit/grammy/denokv";
 *
 * const options: DenoKvStorageOptions = { prefix: ["bot", "sessions"], ttl: 86_400_000 };
 * ```
 */
export interface DenoKvStorageOptions {
  /**
   * The KV key parts under which all records of this storage live. Default
   * `["sessions"]`. Give every storage a prefix of its own, and do not nest
   * one storage's prefix inside another's.
   */
  prefix?: readonly KvKeyPartLike[];
  /**
   * Time to live in milliseconds. A session lives at least this long after
   * its last read or write, and at most 1.5 times as long: the expiry is
   * written 1.5 TTLs ahead, and a read renews it once less than one TTL is
   * left, so most reads write nothing. Without
   * it, sessions never expire, and reads and writes clear an expiry that a
   * session still has from an earlier configuration.
   */
  ttl?: number;
}

/**
 * Stores sessions in Deno KV. Pass `Deno.openKv()`'s database, or the `Kv`
 * of `npm:@deno/kv` on Node; the storage never closes it.
 *
 * Each session is the UTF-8 bytes of the JSON text of the serialization
 * contract. Up to 63 KiB it lives in one KV entry, its head; larger sessions
 * are split into 64 KiB chunks under a fresh generation id, and the head is
 * switched to the new generation atomically, so a reader sees the old or
 * the new session, never a mix. The chunks of a replaced or deleted session
 * are removed. The head holds the session's version, which only a write
 * changes. Keys are limited to 2 KiB by KV: a session key that would not fit
 * is refused with a `SessionError` before anything is written.
 *
 * All of it is the driver in `storages/denokv/`; this class is
 * {@link AsyncDriverStorage} over it. docs/denokv.md describes the records.
 *
 * @example
 * ```ts
 * import { DenoKvStorage } from "@sessionkit/grammy/denokv";
 *
 * const kv = await Deno.openKv(":memory:");
 * const storage = new DenoKvStorage<{ count: number }>(kv, { ttl: 60_000 });
 * await storage.write("42", { count: 1 });
 * console.log(await storage.read("42")); // { count: 1 }
 * kv.close();
 * ```
 */
export class DenoKvStorage<T> extends AsyncDriverStorage<T> {
  /** The KV key parts under which this storage keeps its records. */
  readonly prefix: readonly KvKeyPartLike[];
  /** The time to live in milliseconds, or `undefined` for none. */
  readonly ttl: number | undefined;

  /**
   * Creates a storage over a KV database.
   *
   * @param kv A `Deno.Kv`, or the `Kv` of `npm:@deno/kv`.
   * @param options The key prefix and the time to live.
   */
  constructor(kv: KvLike, options: DenoKvStorageOptions = {}) {
    const driver = new KvDriver(kv, options);
    super(driver);
    this.prefix = driver.prefix;
    this.ttl = driver.ttl;
  }
}
