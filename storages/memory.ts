/**
 * `MemorySessionStorage`: sessions in a `Map` inside the process, a
 * {@link DriverStorage} over the memory driver (`storages/memory/driver.ts`).
 *
 * @module
 */

import { checkOptionNames, checkTtl } from "./shared/options.ts";
import { DriverStorage } from "./shared/driver_storage.ts";
import { jsonCopy } from "./shared/codec.ts";
import { MemoryDriver } from "./memory/driver.ts";
import { provideMemoryAccess, registerMemoryClass } from "../src/memory_access.ts";

/** Options of {@link MemorySessionStorage}. */
export interface MemorySessionStorageOptions {
  /**
   * Time to live in milliseconds. A session not read or written for this long
   * is gone. Every read or write renews it (sliding expiry).
   */
  ttl?: number;
  /**
   * The most sessions kept at once. When a new session would exceed it, the
   * least recently used one is evicted.
   */
  maxEntries?: number;
}

const NAME = "MemorySessionStorage";

/** Checks the constructor's argument; returns the TTL (`Infinity`: none) and the bound. */
function resolve(options: number | MemorySessionStorageOptions | undefined) {
  const opts = typeof options === "number"
    ? { ttl: options }
    : checkOptionNames(NAME, options, ["ttl", "maxEntries"]) as MemorySessionStorageOptions;
  const ttl = checkTtl(NAME, opts.ttl);
  if (
    opts.maxEntries !== undefined &&
    !(Number.isInteger(opts.maxEntries) && opts.maxEntries > 0)
  ) {
    throw new RangeError(`${NAME}: maxEntries must be a positive integer, got ${opts.maxEntries}.`);
  }
  return { ttl, maxEntries: opts.maxEntries };
}

/**
 * Keeps sessions in memory. All data is lost when the process ends, so use it
 * for tests, demos and data you can afford to lose.
 *
 * Values follow the serialization contract: `write` stores a copy of the
 * value as reading its JSON text back would give it, `read` returns a fresh
 * copy every time, so no caller ever holds a reference to the stored data,
 * and a value that JSON cannot hold is refused at `write` time. Every method
 * answers synchronously (the lease methods with a settled promise), and the
 * listings are arrays.
 *
 * Expired and evicted sessions are removed while the storage is used; there
 * are no timers, so the storage never keeps a process alive.
 *
 * **Eviction is not a change.** A session that `maxEntries` evicts while an
 * update of its key is running (because other chats were written meanwhile)
 * is saved normally when that update ends: a conditional write or delete
 * expecting the version the session had when it was evicted lands, as long
 * as nothing was written to or deleted from that key since (then the update
 * conflicts, as it would without eviction). The storage remembers the key
 * and version (not the data) of the last `max(maxEntries, 1024)` evictions
 * for this, so its memory stays bounded; an update that outlives that many
 * later evictions conflicts. A session that expires by its TTL is gone:
 * its update's save conflicts, as with every other storage.
 *
 * @example grammY-style construction with a TTL in milliseconds
 * ```ts
 * import { MemorySessionStorage, session } from "@sessionkit/grammy";
 *
 * const middleware = session({
 *   initial: () => ({ count: 0 }),
 *   storage: new MemorySessionStorage<{ count: number }>(60 * 60 * 1000),
 * });
 * ```
 *
 * @example Bounded memory with least-recently-used eviction
 * ```ts
 * import { MemorySessionStorage } from "@sessionkit/grammy";
 *
 * const storage = new MemorySessionStorage({ maxEntries: 10_000, ttl: 86_400_000 });
 * storage.write("42", { count: 1 });
 * console.log(storage.read("42")); // { count: 1 }
 * ```
 */
export class MemorySessionStorage<S> extends DriverStorage<S, unknown> {
  /** The time to live in milliseconds, or `undefined` for none. */
  readonly ttl: number | undefined;
  /** The largest number of sessions kept, or `undefined` for no bound. */
  readonly maxEntries: number | undefined;
  readonly #driver: MemoryDriver;

  /**
   * Creates a memory storage.
   *
   * @param options A time to live in milliseconds (as in grammY), or an
   *   options object with `ttl` and `maxEntries`.
   */
  constructor(options?: number | MemorySessionStorageOptions) {
    const resolved = resolve(options);
    const driver = new MemoryDriver(resolved);
    super(driver, jsonCopy);
    this.#driver = driver;
    this.ttl = resolved.ttl;
    this.maxEntries = resolved.maxEntries;
    // Used by the middleware only while none of this storage's public
    // methods was replaced (see src/memory_access.ts): the driver itself.
    provideMemoryAccess(this, driver);
  }

  /**
   * The number of sessions held, counting expired ones not yet removed.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage();
   * storage.write("42", { count: 1 });
   * console.log(storage.size); // 1
   * ```
   */
  get size(): number {
    return this.#driver.size;
  }

  // The overrides below only narrow the types: this storage answers synchronously.

  /**
   * Returns a copy of the session stored under `key`, or `undefined`, and
   * renews its TTL.
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
  override read(key: string): S | undefined {
    return super.read(key) as S | undefined;
  }

  /**
   * Stores a copy of `value` under `key`. Throws a `SessionValueError` if the
   * value is not JSON data; nothing is stored then.
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
  override write(key: string, value: S): void {
    super.write(key, value);
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
  override delete(key: string): void {
    super.delete(key);
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
  override has(key: string): boolean {
    return super.has(key) as boolean;
  }

  /**
   * Returns the keys of all unexpired sessions.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage();
   * storage.write("42", { count: 1 });
   * console.log(storage.readAllKeys().length); // 1
   * ```
   */
  override readAllKeys(): string[] {
    return super.readAllKeys() as string[];
  }

  /**
   * Returns copies of all unexpired sessions.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * storage.write("42", { count: 1 });
   * console.log(storage.readAllValues()); // [{ count: 1 }]
   * ```
   */
  override readAllValues(): S[] {
    return super.readAllValues() as S[];
  }

  /**
   * Returns the keys and copies of all unexpired sessions.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * storage.write("42", { count: 1 });
   * console.log(storage.readAllEntries()); // [["42", { count: 1 }]]
   * ```
   */
  override readAllEntries(): [key: string, value: S][] {
    return super.readAllEntries() as [string, S][];
  }

  /**
   * Returns copies of all unexpired sessions, as {@link readAllValues} does.
   * Kept because grammY's `MemorySessionStorage` still has it.
   *
   * @deprecated Use {@link readAllValues} instead.
   *
   * @example
   * ```ts
   * import { MemorySessionStorage } from "@sessionkit/grammy";
   *
   * const storage = new MemorySessionStorage<{ count: number }>();
   * storage.write("1", { count: 1 });
   * storage.write("2", { count: 2 });
   * console.log(storage.readAll()); // [{ count: 1 }, { count: 2 }]
   * ```
   *
   * @returns The sessions, in no particular order.
   */
  readAll(): S[] {
    return this.readAllValues();
  }
}

registerMemoryClass(MemorySessionStorage.prototype as never, DriverStorage.prototype as never);
