/**
 * Optional storage capabilities for running several bot processes: versioned
 * reads with conditional writes (conflict detection), and leases (per-key
 * locking). Storages without them keep working; the middleware only uses a
 * capability when the storage has every method of it.
 *
 * @module
 */

import type { MaybePromise } from "./storage.ts";

/** A session read together with an opaque version token. */
export interface VersionedValue<T> {
  /** The session, or `undefined` when none is stored (or it expired). */
  value: T | undefined;
  /** Opaque token of the stored version; `null` when nothing is stored. */
  version: string | null;
}

/**
 * A storage that can write only if the stored session is still the one that
 * was read (compare-and-set in one round trip). Each method may answer with
 * a promise or, for a storage in memory, synchronously.
 *
 * @example Checking for the capability
 * ```ts
 * import { isConditionalStorage, MemorySessionStorage } from "@sessionkit/grammy";
 *
 * console.log(isConditionalStorage(new MemorySessionStorage()));
 * ```
 */
export interface ConditionalStorage<T> {
  /** Reads the session of `key` with its version. */
  readVersioned(key: string): MaybePromise<VersionedValue<T>>;
  /**
   * Stores `value` under `key` if the stored version is still `expected`
   * (`null`: only if nothing is stored). Resolves to the new version, or to
   * `null` when the stored version differs and nothing was written.
   */
  writeIfVersion(key: string, value: T, expected: string | null): MaybePromise<string | null>;
  /**
   * Deletes the session of `key` if its version is still `expected`.
   * Resolves to `false` when the stored version differs and nothing was
   * deleted; `true` otherwise (also when nothing was stored and `expected`
   * is `null`).
   */
  deleteIfVersion(key: string, expected: string | null): MaybePromise<boolean>;
  /**
   * Set when every write gives the key a version it never had before (a
   * fresh random token or a counter), so that finding the version unchanged
   * means nobody wrote. Versions made from the content (Redis's are the
   * stored text) are not: another write can bring the same one back. After
   * a write whose reply was lost, the middleware takes an unchanged version
   * as "not landed, nobody wrote" only when this is set.
   */
  readonly uniqueVersions?: boolean;
}

/**
 * A storage that can hold short leases per key, so that updates of one key
 * run one at a time across processes. A lease expires by itself after its
 * TTL, so a crashed holder blocks the key no longer than that. Lease records
 * never show up in `readAllKeys` and never collide with sessions.
 *
 * @example Checking for the capability
 * ```ts
 * import { isLeaseStorage, MemorySessionStorage } from "@sessionkit/grammy";
 *
 * console.log(isLeaseStorage(new MemorySessionStorage()));
 * ```
 */
export interface LeaseStorage {
  /** Takes the lease of `key` for `owner` for `ttl` ms; `false` if someone else holds it. */
  acquireLease(key: string, owner: string, ttl: number): Promise<boolean>;
  /** Extends `owner`'s lease to `ttl` ms from now; `false` if it was lost. */
  renewLease(key: string, owner: string, ttl: number): Promise<boolean>;
  /** Gives the lease up if `owner` still holds it. */
  releaseLease(key: string, owner: string): Promise<void>;
  /**
   * Set when this instance cannot hold leases after all (a Redis storage
   * with an empty prefix, say), saying why and what to do: `lock` then fails
   * when the middleware is created instead of at every update.
   */
  readonly leaseProblem?: string;
}

/**
 * What a save under a lease gave: done (the new version; `null` after a
 * delete), the lease given up by `saveAndReleaseLease` and kept by
 * `saveKeepingLease`; or not done, because the stored version was not the
 * expected one (the lease is still held) or because the lease was not held
 * (nothing was written).
 */
export type LockedSave =
  | { readonly saved: true; readonly version: string | null }
  | { readonly saved: false; readonly reason: "conflict" | "lease" };

/**
 * A storage that can join a lease with a read, and a save with giving the
 * lease up, each in one round trip where the backend allows: a locked
 * update then costs two round trips instead of four. Every storage built on
 * `DriverStorage` has it (in two round trips each where its driver cannot
 * do one). The middleware calls these methods only while none of the
 * methods they stand for (`read`, `readVersioned`, `write`,
 * `writeIfVersion`, `delete`, `deleteIfVersion`, `acquireLease`,
 * `releaseLease`) is overridden below the class that defines them, so an
 * override of any of those always sees its calls.
 *
 * @example A locked update by hand
 * ```ts
 * import { MemorySessionStorage } from "@sessionkit/grammy";
 *
 * const storage = new MemorySessionStorage<{ count: number }>();
 * const read = await storage.acquireLeaseAndRead("42", "me", 5000);
 * if (read !== null) {
 *   const next = { count: (read.value?.count ?? 0) + 1 };
 *   await storage.saveAndReleaseLease("42", next, read.version, "me");
 * }
 * ```
 */
export interface LockedStorage<T> {
  /**
   * Takes the lease of `key` for `owner` for `ttl` ms and, if it was taken,
   * reads the session with its version; the read sees every write that
   * landed before the lease was taken. Resolves to `null` when someone else
   * holds the lease (nothing was read).
   */
  acquireLeaseAndRead(key: string, owner: string, ttl: number): Promise<VersionedValue<T> | null>;
  /**
   * While `owner` holds the lease of `key`: stores `value` (deletes for
   * `undefined`) if the stored version is still `expected` (`null`: nothing
   * stored; `undefined`: in any case), and then gives the lease up.
   */
  saveAndReleaseLease(
    key: string,
    value: T | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave>;
  /**
   * Optional: as {@link LockedStorage.saveAndReleaseLease}, but the lease is
   * kept. The middleware uses it for a save while another update of the key
   * still runs in this process, so that the storage checks the lease in the
   * write itself; without it, such a save is a plain write, checked against
   * the lease only before it is sent.
   */
  saveKeepingLease?(
    key: string,
    value: T | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave>;
}

/**
 * Tells whether `storage` supports conditional writes.
 *
 * @example
 * ```ts
 * import { isConditionalStorage, MemorySessionStorage } from "@sessionkit/grammy";
 *
 * isConditionalStorage(new MemorySessionStorage()); // true
 * ```
 *
 * @param storage Any storage adapter.
 * @returns Whether it has every method of {@link ConditionalStorage}.
 */
export function isConditionalStorage<T>(storage: unknown): storage is ConditionalStorage<T> {
  const s = storage as Partial<ConditionalStorage<T>> | undefined;
  return typeof s?.readVersioned === "function" && typeof s.writeIfVersion === "function" &&
    typeof s.deleteIfVersion === "function";
}

/**
 * Tells whether `storage` supports leases.
 *
 * @example
 * ```ts
 * import { isLeaseStorage, MemorySessionStorage } from "@sessionkit/grammy";
 *
 * isLeaseStorage(new MemorySessionStorage()); // true
 * ```
 *
 * @param storage Any storage adapter.
 * @returns Whether it has every method of {@link LeaseStorage}.
 */
export function isLeaseStorage(storage: unknown): storage is LeaseStorage {
  const s = storage as Partial<LeaseStorage> | undefined;
  return typeof s?.acquireLease === "function" && typeof s.renewLease === "function" &&
    typeof s.releaseLease === "function";
}
