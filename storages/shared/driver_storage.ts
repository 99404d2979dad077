/**
 * `DriverStorage`: the one layer that turns a {@link SessionDriver} into a
 * complete sessionkit storage (grammY's `StorageAdapter`, conflict detection
 * and leases). Every storage shipped with sessionkit is a subclass of it over
 * its own driver, and a new backend is written the same way.
 *
 * @module
 */

import type { MaybePromise, StorageAdapter } from "../../src/storage.ts";
import type {
  ConditionalStorage,
  LeaseStorage,
  LockedSave,
  LockedStorage,
  VersionedValue,
} from "../../src/capabilities.ts";
import { SessionError } from "../../src/errors.ts";
import { isPromiseLike } from "../../src/values.ts";
import { registerLockedClass } from "../../src/locked_access.ts";
import type { ScanPage, SessionDriver, StoredRecord } from "./driver.ts";
import { jsonText, type PayloadCodec } from "./codec.ts";
import { checkKey, checkLeaseTtl, checkOwner } from "./keys.ts";

/** Keys asked of the driver per listing page. */
const PAGE = 500;

/** Applies `f` to `value` at once when it is not a promise, after it settles otherwise. */
function then<A, B>(value: MaybePromise<A>, f: (a: A) => B): MaybePromise<B> {
  return isPromiseLike<A>(value) ? Promise.resolve(value).then(f) : f(value);
}

/**
 * A storage over a driver. Checks keys, turns sessions into payloads and
 * back, pages through listings, and words every error the same way for
 * every backend; the driver only moves payloads and versions.
 *
 * Its methods answer synchronously when the driver does (the memory
 * storage), with a promise otherwise. Listings are arrays for a driver
 * marked `synchronous` and async iterables otherwise.
 *
 * @example A storage of your own over a driver
 * ```ts
 * import { DriverStorage, session, type SessionDriver } from "@sessionkit/grammy";
 *
 * declare const driver: SessionDriver<string>; // see docs/storages.md
 *
 * class MyStorage<T> extends DriverStorage<T> {
 *   constructor() {
 *     super(driver);
 *   }
 * }
 * const middleware = session({ initial: () => ({ count: 0 }), storage: new MyStorage() });
 * ```
 */
export class DriverStorage<T, P = string>
  implements StorageAdapter<T>, ConditionalStorage<T>, LeaseStorage, LockedStorage<T> {
  readonly #driver: SessionDriver<P>;
  readonly #codec: PayloadCodec<P>;

  /**
   * Creates a storage over `driver`.
   *
   * @param driver The backend.
   * @param codec How sessions become payloads; JSON text by default.
   */
  constructor(driver: SessionDriver<P>, codec?: PayloadCodec<P>) {
    this.#driver = driver;
    this.#codec = codec ?? (jsonText as unknown as PayloadCodec<P>);
  }

  /**
   * Whether every write gives the key a new version (the driver's
   * `uniqueVersions`; see `ConditionalStorage.uniqueVersions`). A subclass
   * that makes its versions another way must override it.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * new MemorySessionStorage().uniqueVersions; // true
   * ```
   */
  get uniqueVersions(): boolean {
    return this.#driver.uniqueVersions === true;
  }

  #key(key: string): string {
    return checkKey(this.#driver.name, this.#driver.keys, key);
  }

  #decode(key: string, payload: P): T {
    try {
      return this.#codec.decode(payload) as T;
    } catch (err) {
      throw new SessionError(
        `${this.#driver.name}: the value stored under key ${JSON.stringify(key)} is not a ` +
          `session written by sessionkit (it is not JSON text). Delete it, or give this ` +
          `storage a namespace of its own (a prefix or a table).`,
        key,
        { cause: err },
      );
    }
  }

  /**
   * Returns the session stored under `key`, or `undefined`. Renews its
   * expiry with a TTL, and clears an old one without.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * storage.write("42", { count: 1 });
   * console.log(storage.read("42")); // { count: 1 }
   * ```
   *
   * @param key The session key.
   */
  read(key: string): MaybePromise<T | undefined> {
    const k = this.#key(key);
    return then(
      this.#driver.read(k),
      (record) => record === undefined ? undefined : this.#decode(k, record.payload),
    );
  }

  /**
   * Stores `value` under `key`, replacing what was there (last write
   * wins). Throws a `SessionValueError` before anything is written if the
   * value is not JSON data.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * storage.write("42", { count: 1 });
   * ```
   *
   * @param key The session key.
   * @param value The session data.
   */
  write(key: string, value: T): MaybePromise<void> {
    const k = this.#key(key);
    return then(this.#driver.write(k, this.#codec.encode(value, k), undefined), () => {});
  }

  /**
   * Removes the session stored under `key`; a missing key is fine.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage();
   * storage.delete("42");
   * ```
   *
   * @param key The session key.
   */
  delete(key: string): MaybePromise<void> {
    return then(this.#driver.delete(this.#key(key), undefined), () => {});
  }

  /**
   * Tells whether an unexpired session is stored under `key`, without
   * renewing it.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * console.log(new MemorySessionStorage().has("42")); // false
   * ```
   *
   * @param key The session key.
   */
  has(key: string): MaybePromise<boolean> {
    return this.#driver.has(this.#key(key));
  }

  /**
   * Reads the session of `key` with its version, for a later
   * {@link DriverStorage.writeIfVersion}. Renews the expiry as `read` does.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * const { value, version } = await storage.readVersioned("42");
   * await storage.writeIfVersion("42", { count: (value?.count ?? 0) + 1 }, version);
   * ```
   *
   * @param key The session key.
   * @returns The session (or `undefined`) and its version (or `null`).
   */
  readVersioned(key: string): MaybePromise<VersionedValue<T>> {
    const k = this.#key(key);
    return then(
      this.#driver.read(k),
      (record) =>
        record === undefined
          ? { value: undefined, version: null }
          : { value: this.#decode(k, record.payload), version: record.version },
    );
  }

  /**
   * Stores `value` only if the stored version is still `expected` (`null`:
   * only if nothing is stored), as one atomic step.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * const version = await storage.writeIfVersion("42", { count: 1 }, null);
   * console.log(version === null ? "someone was faster" : "written");
   * ```
   *
   * @param key The session key.
   * @param value The session data.
   * @param expected The version read before, or `null` for "nothing stored".
   * @returns The new version, or `null` if nothing was written.
   */
  writeIfVersion(key: string, value: T, expected: string | null): MaybePromise<string | null> {
    const k = this.#key(key);
    const payload = this.#codec.encode(value, k);
    return this.#driver.write(k, payload, this.#expected(expected));
  }

  /**
   * Deletes the session of `key` only if its version is still `expected`.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage();
   * const { version } = await storage.readVersioned("42");
   * console.log(await storage.deleteIfVersion("42", version)); // true
   * ```
   *
   * @param key The session key.
   * @param expected The version read before, or `null` for "nothing stored".
   * @returns Whether the stored version matched (and the session is gone).
   */
  deleteIfVersion(key: string, expected: string | null): MaybePromise<boolean> {
    return this.#driver.delete(this.#key(key), this.#expected(expected));
  }

  /** An expected version must be a token or `null`; anything else is a bug of the caller. */
  #expected(expected: unknown): string | null {
    if (expected === null || typeof expected === "string") return expected;
    throw new TypeError(
      `${this.#driver.name}: the expected version must be a version string from ` +
        `readVersioned or writeIfVersion, or null for "nothing stored", got ${
          expected === undefined ? "undefined" : typeof expected
        }. For a write without a check, call write() or delete().`,
    );
  }

  /**
   * Why this storage cannot hold leases, when it cannot (see
   * {@link SessionDriver.leaseProblem}); `undefined` normally.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * console.log(new MemorySessionStorage().leaseProblem); // undefined
   * ```
   */
  get leaseProblem(): string | undefined {
    return this.#driver.leaseProblem;
  }

  /**
   * Takes the lease of `key` for `owner` for `ttl` ms; `false` if someone
   * else holds it. Leases never show up among sessions.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage();
   * console.log(await storage.acquireLease("42", "me", 5000)); // true
   * ```
   *
   * @param key The session key.
   * @param owner Who takes the lease, unique per holder.
   * @param ttl How long the lease lasts, in ms.
   */
  acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.#lease(() => {
      const k = this.#key(key);
      checkOwner(this.#driver.name, owner);
      checkLeaseTtl(this.#driver.name, ttl);
      return this.#driver.acquireLease(k, owner, ttl);
    });
  }

  /**
   * Extends `owner`'s lease of `key` to `ttl` ms from now; `false` if it was
   * lost.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage();
   * await storage.acquireLease("42", "me", 5000);
   * console.log(await storage.renewLease("42", "me", 5000)); // true
   * ```
   *
   * @param key The session key.
   * @param owner The holder.
   * @param ttl How long the lease lasts from now, in ms.
   */
  renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.#lease(() => {
      const k = this.#key(key);
      checkOwner(this.#driver.name, owner);
      checkLeaseTtl(this.#driver.name, ttl);
      return this.#driver.renewLease(k, owner, ttl);
    });
  }

  /**
   * Gives up `owner`'s lease of `key`, if `owner` still holds it.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage();
   * await storage.acquireLease("42", "me", 5000);
   * await storage.releaseLease("42", "me");
   * ```
   *
   * @param key The session key.
   * @param owner The holder.
   */
  releaseLease(key: string, owner: string): Promise<void> {
    return this.#lease(() => {
      const k = this.#key(key);
      checkOwner(this.#driver.name, owner);
      return this.#driver.releaseLease(k, owner);
    });
  }

  /**
   * Takes the lease of `key` for `owner` for `ttl` ms and, if it was taken,
   * reads the session with its version: in one round trip where the driver
   * can (`acquireLeaseAndRead`), else in two. `null` when someone else holds
   * the lease (nothing was read).
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * const read = await storage.acquireLeaseAndRead("42", "me", 5000);
   * console.log(read === null ? "someone else holds it" : read.value);
   * ```
   *
   * @param key The session key.
   * @param owner Who takes the lease, unique per holder.
   * @param ttl How long the lease lasts, in ms.
   * @returns The session and its version, or `null`.
   */
  acquireLeaseAndRead(key: string, owner: string, ttl: number): Promise<VersionedValue<T> | null> {
    return this.#lease(() => {
      const k = this.#key(key);
      checkOwner(this.#driver.name, owner);
      checkLeaseTtl(this.#driver.name, ttl);
      const driver = this.#driver;
      const answer = (record: StoredRecord<P> | undefined | false) =>
        record === false
          ? null
          : record === undefined
          ? { value: undefined, version: null }
          : { value: this.#decode(k, record.payload), version: record.version };
      if (driver.acquireLeaseAndRead !== undefined) {
        return driver.acquireLeaseAndRead(k, owner, ttl).then(answer);
      }
      return (async () => {
        if (!(await driver.acquireLease(k, owner, ttl))) return null;
        return answer(await driver.read(k));
      })();
    });
  }

  /**
   * While `owner` holds the lease of `key`, stores `value` (deletes for
   * `undefined`) if the stored version is still `expected` (`null`: nothing
   * stored; `undefined`: in any case), then gives the lease up: in one round
   * trip where the driver can (`saveAndReleaseLease`), else as a write and a
   * release. After a conflict the lease is still held.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * const read = await storage.acquireLeaseAndRead("42", "me", 5000);
   * const saved = await storage.saveAndReleaseLease("42", { count: 1 }, read?.version, "me");
   * console.log(saved.saved ? "saved, lease given up" : saved.reason);
   * ```
   *
   * @param key The session key.
   * @param value The session data, or `undefined` to delete it.
   * @param expected The version read before, `null` for "nothing stored", or `undefined`.
   * @param owner The holder of the lease.
   * @returns Whether it was saved (with the new version), else why not.
   */
  saveAndReleaseLease(
    key: string,
    value: T | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return this.#lockedSave(key, value, expected, owner, true);
  }

  /**
   * While `owner` holds the lease of `key`, stores `value` (deletes for
   * `undefined`) if the stored version is still `expected` (`null`: nothing
   * stored; `undefined`: in any case), and keeps the lease: the save the
   * middleware makes while another update of the key still runs in this
   * process. The lease is checked in the write itself where the driver can
   * (`saveKeepingLease`); else the write is made without a check.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * const read = await storage.acquireLeaseAndRead("42", "me", 5000);
   * const saved = await storage.saveKeepingLease("42", { count: 1 }, read?.version, "me");
   * console.log(saved.saved ? "saved, lease kept" : saved.reason);
   * ```
   *
   * @param key The session key.
   * @param value The session data, or `undefined` to delete it.
   * @param expected The version read before, `null` for "nothing stored", or `undefined`.
   * @param owner The holder of the lease.
   * @returns Whether it was saved (with the new version), else why not.
   */
  saveKeepingLease(
    key: string,
    value: T | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return this.#lockedSave(key, value, expected, owner, false);
  }

  /**
   * A locked save through the driver's joined call where it has one; else
   * the write or delete, then (with `release`) the release of the lease.
   */
  #lockedSave(
    key: string,
    value: T | undefined,
    expected: string | null | undefined,
    owner: string,
    release: boolean,
  ): Promise<LockedSave> {
    return this.#lease(() => {
      const k = this.#key(key);
      checkOwner(this.#driver.name, owner);
      const condition = expected === undefined ? undefined : this.#expected(expected);
      const payload = value === undefined ? undefined : this.#codec.encode(value, k);
      const driver = this.#driver;
      const joined = release ? driver.saveAndReleaseLease : driver.saveKeepingLease;
      if (joined !== undefined) return joined.call(driver, k, payload, condition, owner);
      return (async (): Promise<LockedSave> => {
        const version = payload === undefined
          ? (await driver.delete(k, condition) ? null : false)
          : (await driver.write(k, payload, condition)) ?? false;
        if (version === false) return { saved: false, reason: "conflict" };
        if (release) await this.#releaseQuietly(k, owner);
        return { saved: true, version };
      })();
    });
  }

  /** Gives a lease up after a save; a lease that is not given up expires by itself. */
  async #releaseQuietly(key: string, owner: string): Promise<void> {
    try {
      await this.#driver.releaseLease(key, owner);
    } catch {
      // The session is saved either way.
    }
  }

  /** Lease methods always answer with a promise, rejected on bad arguments. */
  #lease<R>(call: () => MaybePromise<R>): Promise<R> {
    try {
      return Promise.resolve(call());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Lists the keys of all stored sessions.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage();
   * for await (const key of storage.readAllKeys()) console.log(key);
   * ```
   */
  readAllKeys(): string[] | AsyncIterable<string> {
    return this.#list(false, (key) => key);
  }

  /**
   * Lists all stored sessions.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * for await (const value of storage.readAllValues()) console.log(value.count);
   * ```
   */
  readAllValues(): T[] | AsyncIterable<T> {
    return this.#list(true, (_key, value) => value);
  }

  /**
   * Lists all stored sessions with their keys.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * for await (const [key, value] of storage.readAllEntries()) console.log(key, value.count);
   * ```
   */
  readAllEntries(): [key: string, value: T][] | AsyncIterable<[key: string, value: T]> {
    return this.#list(true, (key, value): [string, T] => [key, value]);
  }

  /**
   * Pages through the driver's listing. A driver that answers
   * synchronously gets an array back at once; otherwise an async iterable
   * that asks for each page when the one before is used up.
   */
  #list<R>(values: boolean, make: (key: string, value: T) => R): R[] | AsyncIterable<R> {
    const driver = this.#driver;
    // Per listing, and only for a driver whose listing may repeat keys.
    const seen = driver.repeats ? new Set<string>() : undefined;
    const emit = (page: ScanPage<P>, out: R[]) => {
      for (const [i, key] of page.keys.entries()) {
        if (seen !== undefined) {
          if (seen.has(key)) continue;
          seen.add(key);
        }
        if (!values) {
          out.push(make(key, undefined as T));
          continue;
        }
        const payload = page.payloads?.[i];
        if (payload !== undefined) out.push(make(key, this.#decode(key, payload)));
      }
    };
    if (driver.synchronous) {
      const out: R[] = [];
      let cursor: string | undefined;
      do {
        const page = driver.scan(cursor, PAGE, values) as ScanPage<P>;
        emit(page, out);
        cursor = page.cursor;
      } while (cursor !== undefined);
      return out;
    }
    return (async function* () {
      let cursor: string | undefined;
      do {
        const page = await driver.scan(cursor, PAGE, values);
        const out: R[] = [];
        emit(page, out);
        yield* out;
        cursor = page.cursor;
      } while (cursor !== undefined);
    })();
  }

  /**
   * Closes what the driver opened; a storage over a client or pool you
   * passed in leaves it open.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * await new MemorySessionStorage().close();
   * ```
   */
  async close(): Promise<void> {
    await this.#driver.close?.();
  }
}

registerLockedClass(DriverStorage.prototype);
