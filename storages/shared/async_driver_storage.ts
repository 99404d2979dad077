/**
 * `AsyncDriverStorage`: {@link DriverStorage} for a driver that talks to a
 * server. Every method answers with a promise (a refused key or value is a
 * rejected promise, never a synchronous throw), typed as such, and listings
 * are async generators.
 *
 * @module
 */

import type { LockedSave, VersionedValue } from "../../src/capabilities.ts";
import { DriverStorage } from "./driver_storage.ts";
import { registerLockedClass } from "../../src/locked_access.ts";

/**
 * A storage over a networked driver: the methods of {@link DriverStorage},
 * always asynchronous.
 *
 * @example A networked storage of your own
 * ```ts
 * import { AsyncDriverStorage, type SessionDriver } from "@sessionkit/grammy";
 *
 * declare function connectDriver(url: string): SessionDriver<string>;
 *
 * class MyStorage<T> extends AsyncDriverStorage<T> {
 *   constructor(url: string) {
 *     super(connectDriver(url));
 *   }
 * }
 * const value = await new MyStorage<{ count: number }>("my://server").read("42");
 * ```
 */
export class AsyncDriverStorage<T, P = string> extends DriverStorage<T, P> {
  /**
   * Returns the session stored under `key`, or `undefined`; renews its
   * expiry with a TTL, clears an old one without.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<{ count: number }>;
   * console.log(await storage.read("42"));
   * ```
   *
   * @param key The session key.
   */
  override async read(key: string): Promise<T | undefined> {
    return await super.read(key);
  }

  /**
   * Stores `value` under `key` (last write wins).
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<{ count: number }>;
   * await storage.write("42", { count: 1 });
   * ```
   *
   * @param key The session key.
   * @param value The session data.
   */
  override async write(key: string, value: T): Promise<void> {
    await super.write(key, value);
  }

  /**
   * Removes the session stored under `key`.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<unknown>;
   * await storage.delete("42");
   * ```
   *
   * @param key The session key.
   */
  override async delete(key: string): Promise<void> {
    await super.delete(key);
  }

  /**
   * Tells whether an unexpired session is stored under `key`.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<unknown>;
   * console.log(await storage.has("42"));
   * ```
   *
   * @param key The session key.
   */
  override async has(key: string): Promise<boolean> {
    return await super.has(key);
  }

  /**
   * Reads the session of `key` with its version.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<{ count: number }>;
   * const { value, version } = await storage.readVersioned("42");
   * ```
   *
   * @param key The session key.
   */
  override async readVersioned(key: string): Promise<VersionedValue<T>> {
    return await super.readVersioned(key);
  }

  /**
   * Stores `value` if the stored version is still `expected`.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<{ count: number }>;
   * console.log(await storage.writeIfVersion("42", { count: 1 }, null));
   * ```
   *
   * @param key The session key.
   * @param value The session data.
   * @param expected The version read before, or `null` for "nothing stored".
   */
  override async writeIfVersion(
    key: string,
    value: T,
    expected: string | null,
  ): Promise<string | null> {
    return await super.writeIfVersion(key, value, expected);
  }

  /**
   * Deletes the session of `key` if its version is still `expected`.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<unknown>;
   * console.log(await storage.deleteIfVersion("42", null));
   * ```
   *
   * @param key The session key.
   * @param expected The version read before, or `null` for "nothing stored".
   */
  override async deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
    return await super.deleteIfVersion(key, expected);
  }

  /**
   * Takes the lease of `key` and reads the session, as one step where the
   * backend allows; `null` when someone else holds the lease.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<{ count: number }>;
   * const read = await storage.acquireLeaseAndRead("42", "me", 5000);
   * ```
   *
   * @param key The session key.
   * @param owner Who takes the lease, unique per holder.
   * @param ttl How long the lease lasts, in ms.
   */
  override async acquireLeaseAndRead(
    key: string,
    owner: string,
    ttl: number,
  ): Promise<VersionedValue<T> | null> {
    return await super.acquireLeaseAndRead(key, owner, ttl);
  }

  /**
   * While `owner` holds the lease, saves `value` (deletes for `undefined`)
   * if the version is still `expected`, and gives the lease up.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<{ count: number }>;
   * const saved = await storage.saveAndReleaseLease("42", { count: 1 }, null, "me");
   * ```
   *
   * @param key The session key.
   * @param value The session data, or `undefined` to delete it.
   * @param expected The version read before, `null` for "nothing stored", or `undefined`.
   * @param owner The holder of the lease.
   */
  override async saveAndReleaseLease(
    key: string,
    value: T | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return await super.saveAndReleaseLease(key, value, expected, owner);
  }

  /**
   * While `owner` holds the lease, saves `value` (deletes for `undefined`)
   * if the version is still `expected`, and keeps the lease.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<{ count: number }>;
   * const saved = await storage.saveKeepingLease("42", { count: 1 }, null, "me");
   * ```
   *
   * @param key The session key.
   * @param value The session data, or `undefined` to delete it.
   * @param expected The version read before, `null` for "nothing stored", or `undefined`.
   * @param owner The holder of the lease.
   */
  override async saveKeepingLease(
    key: string,
    value: T | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return await super.saveKeepingLease(key, value, expected, owner);
  }

  /**
   * Lists the keys of all stored sessions.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<unknown>;
   * for await (const key of storage.readAllKeys()) console.log(key);
   * ```
   */
  override readAllKeys(): AsyncGenerator<string> {
    return super.readAllKeys() as AsyncGenerator<string>;
  }

  /**
   * Lists all stored sessions.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<{ count: number }>;
   * for await (const value of storage.readAllValues()) console.log(value.count);
   * ```
   */
  override readAllValues(): AsyncGenerator<T> {
    return super.readAllValues() as AsyncGenerator<T>;
  }

  /**
   * Lists all stored sessions with their keys.
   *
   * @example
   * ```ts
   * import type { AsyncDriverStorage } from "@sessionkit/grammy";
   *
   * declare const storage: AsyncDriverStorage<{ count: number }>;
   * for await (const [key, value] of storage.readAllEntries()) console.log(key, value);
   * ```
   */
  override readAllEntries(): AsyncGenerator<[key: string, value: T]> {
    return super.readAllEntries() as AsyncGenerator<[string, T]>;
  }
}

registerLockedClass(AsyncDriverStorage.prototype);
