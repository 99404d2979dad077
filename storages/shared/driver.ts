/**
 * The driver contract: what a backend must do so that {@link DriverStorage}
 * can turn it into a complete sessionkit storage. A driver deals in stored
 * payloads (JSON text for every networked backend) and opaque version
 * tokens; the shared layer does everything else: key checks, serialization,
 * listings, error wording and the grammY `StorageAdapter` shape.
 *
 * The rules every driver keeps (checked by `tests/contract.ts`):
 * - **Versions.** Every write that lands gives the record a new version
 *   token (a driver may use the payload itself as its version, as Redis
 *   does: equal payloads then share a version, which is harmless). Nothing but a
 *   write or a delete changes the version: a read that renews or clears an
 *   expiry keeps it, so a read never makes anyone's conditional write fail.
 * - **Expiry.** With a TTL, a read or a write keeps the record alive for at
 *   least the TTL from then on. A driver for which a renewal is a write of
 *   its own may renew lazily by the rule of `expiry.ts`: expiry written 1.5
 *   TTLs ahead, renewed on read once less than one TTL is left. Without a
 *   TTL, a read or a write removes any expiry the record still has from an
 *   earlier configuration: turning the TTL off stops expiry.
 * - **Atomicity.** A conditional write or delete compares and changes in one
 *   step; a write is all or nothing.
 * - **Unconditional writes** (`expected === undefined`) are last-write-wins
 *   and succeed however many other writers there are.
 *
 * @module
 */

import type { MaybePromise } from "../../src/storage.ts";
import type { LockedSave } from "../../src/capabilities.ts";

/** One stored session as the driver holds it. */
export interface StoredRecord<P> {
  /** What was stored (JSON text for a serializing driver). */
  payload: P;
  /** The record's version token. */
  version: string;
}

/** One page of a listing. */
export interface ScanPage<P> {
  /** Session keys; each at most once per listing unless the driver `repeats`. */
  keys: string[];
  /**
   * With `values`, the payload of each key (same index); `undefined` for a
   * key that went away between listing and fetching, which is skipped.
   */
  payloads?: (P | undefined)[];
  /** Where the next page starts; `undefined` when this was the last one. */
  cursor: string | undefined;
}

/** What a backend accepts as a key. */
export interface KeyRules {
  /** Keys must be well-formed Unicode (no lone surrogates). */
  wellFormed?: boolean;
  /** Keys must not contain the NUL character. */
  noNul?: boolean;
  /** The longest key in UTF-8 bytes. */
  maxBytes?: number;
  /** Why the limit exists and what to do, appended to the error. */
  maxBytesReason?: string;
}

/**
 * A backend. Each method may answer synchronously or with a promise; keys
 * reach it already checked against {@link SessionDriver.keys}.
 *
 * @example A driver over a `Map` (for illustration: one process only)
 * ```ts
 * import { DriverStorage, type SessionDriver } from "@sessionkit/grammy";
 *
 * const map = new Map<string, { payload: string; version: string }>();
 * let next = 0;
 * const driver: SessionDriver<string> = {
 *   name: "MapStorage",
 *   read: (key) => map.get(key),
 *   write(key, payload, expected) {
 *     if (expected !== undefined && (map.get(key)?.version ?? null) !== expected) return null;
 *     const version = String(++next);
 *     map.set(key, { payload, version });
 *     return version;
 *   },
 *   delete(key, expected) {
 *     if (expected !== undefined && (map.get(key)?.version ?? null) !== expected) return false;
 *     map.delete(key);
 *     return true;
 *   },
 *   has: (key) => map.has(key),
 *   scan: () => ({ keys: [...map.keys()], cursor: undefined }),
 *   acquireLease: () => true,
 *   renewLease: () => true,
 *   releaseLease: () => {},
 * };
 * const storage = new DriverStorage<{ count: number }>(driver);
 * await storage.write("42", { count: 1 });
 * ```
 */
export interface SessionDriver<P = string> {
  /** The storage's name, which starts every error message (`"RedisStorage"`). */
  readonly name: string;
  /**
   * Set when every method answers synchronously (an in-process backend):
   * listings are then returned as arrays.
   */
  readonly synchronous?: boolean;
  /**
   * Set when `scan` may return a key more than once in one listing (Redis's
   * `SCAN` does while the server resizes its tables): the layer then
   * remembers the keys of each listing and hands every key out once.
   */
  readonly repeats?: boolean;
  /** What keys the backend accepts; checked by the layer before any call. */
  readonly keys?: KeyRules;
  /**
   * Set when every write gives the key a version it never had before (see
   * `ConditionalStorage.uniqueVersions`): leave it out for versions made
   * from the content.
   */
  readonly uniqueVersions?: boolean;
  /**
   * The record of `key`, or `undefined` when none is stored or it expired.
   * Renews the expiry with a TTL, clears it without one; never changes the
   * version.
   */
  read(key: string): MaybePromise<StoredRecord<P> | undefined>;
  /**
   * Stores `payload` under `key` and returns its new version. With
   * `expected` a version, only if that is still the stored version; with
   * `null`, only if nothing is stored; with `undefined`, in any case.
   * Returns `null` when the condition failed and nothing was written.
   */
  write(key: string, payload: P, expected: string | null | undefined): MaybePromise<string | null>;
  /**
   * Deletes `key`, under the same condition as {@link SessionDriver.write}.
   * Returns `false` when the condition failed; `true` otherwise (also when
   * nothing was stored).
   */
  delete(key: string, expected: string | null | undefined): MaybePromise<boolean>;
  /** Whether an unexpired record is stored under `key`; renews nothing. */
  has(key: string): MaybePromise<boolean>;
  /**
   * One page of the stored keys, from `cursor` (`undefined`: the start), of
   * about `limit` keys; with `values`, with their payloads. A listing visits
   * every key that exists throughout it; renews nothing.
   */
  scan(cursor: string | undefined, limit: number, values: boolean): MaybePromise<ScanPage<P>>;
  /**
   * Set when this driver cannot hold leases after all, saying why and what
   * to do (its lease methods then throw that): `lock` fails when the
   * middleware is created.
   */
  readonly leaseProblem?: string;
  /** Takes the lease of `key` for `owner` for `ttl` ms unless another owner holds it. */
  acquireLease(key: string, owner: string, ttl: number): MaybePromise<boolean>;
  /** Extends `owner`'s unexpired lease of `key` to `ttl` ms from now; `false` if it is gone. */
  renewLease(key: string, owner: string, ttl: number): MaybePromise<boolean>;
  /** Gives up `owner`'s lease of `key`, if `owner` still holds it. */
  releaseLease(key: string, owner: string): MaybePromise<void>;
  /**
   * Optional, for a locked read in one round trip: takes the lease of `key`
   * for `owner` for `ttl` ms (as {@link SessionDriver.acquireLease}) and,
   * only if it was taken, reads the record of `key` (as
   * {@link SessionDriver.read}), as one step: the read sees every write
   * that landed before the lease was taken. Resolves to `false` when another
   * owner holds the lease (nothing was read). Without it, the layer takes
   * the lease and then reads, in two round trips.
   */
  acquireLeaseAndRead?(
    key: string,
    owner: string,
    ttl: number,
  ): Promise<StoredRecord<P> | undefined | false>;
  /**
   * Optional, for a locked save in one round trip: only while `owner` holds
   * an unexpired lease of `key`, writes `payload` (or, for `undefined`,
   * deletes) under the condition `expected` (as {@link SessionDriver.write}
   * and {@link SessionDriver.delete}) and, if that was done, gives the
   * lease up, as one step. Without it, the layer writes and then releases,
   * in two round trips.
   */
  saveAndReleaseLease?(
    key: string,
    payload: P | undefined,
    expected: string | null | undefined,
    owner: string,
  ): MaybePromise<LockedSave>;
  /**
   * Optional, for a save under a lease that keeps it: as
   * {@link SessionDriver.saveAndReleaseLease}, but the lease stays held.
   * Without it, the layer writes without a check of the lease.
   */
  saveKeepingLease?(
    key: string,
    payload: P | undefined,
    expected: string | null | undefined,
    owner: string,
  ): MaybePromise<LockedSave>;
  /** Closes what the driver opened. */
  close?(): MaybePromise<void>;
  /**
   * Told by {@link withTimeout} that a call was given up by the storage's
   * timeout: the connection it went over may have gone silent (a half-open
   * TCP connection answers nothing and is never closed). A driver that owns
   * its connections checks them and drops one that does not answer; a
   * driver over a client its user passed in leaves it alone.
   */
  timedOut?(): void;
}
