/**
 * `MemorySessionStorage`: sessions in a `Map` inside the process.
 *
 * @module
 */

import type { MaybePromise, StorageAdapter } from "../src/storage.ts";
import type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";
import { copySession } from "../src/serialization.ts";
import { cloneJson } from "../src/values.ts";
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

interface Entry {
  /** A validated copy of the session, never handed out and never changed. */
  data: unknown;
  expires: number;
  version: string;
}

/**
 * Keeps sessions in memory. All data is lost when the process ends, so use it
 * for tests, demos and data you can afford to lose.
 *
 * Values follow the serialization contract: `write` stores a copy of the
 * value as reading its JSON text back would give it, `read` returns a fresh
 * copy every time, so no caller ever holds a reference to the stored data,
 * and a value that JSON cannot hold is refused at `write` time.
 *
 * Expired and evicted sessions are removed while the storage is used; there
 * are no timers, so the storage never keeps a process alive.
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
export class MemorySessionStorage<S>
  implements StorageAdapter<S>, ConditionalStorage<S>, LeaseStorage {
  /** The time to live in milliseconds, or `undefined` for none. */
  readonly ttl: number | undefined;
  /** The largest number of sessions kept, or `undefined` for no bound. */
  readonly maxEntries: number | undefined;
  readonly #map = new Map<string, Entry>();
  readonly #leases = new Map<string, { owner: string; expires: number }>();
  readonly #ordered: boolean;
  #versions = 0;
  #cursor: Iterator<[string, Entry]> | undefined;
  #peeked: [string, Entry] | undefined;

  /**
   * Creates a memory storage.
   *
   * @param options A time to live in milliseconds (as in grammY), or an
   *   options object with `ttl` and `maxEntries`.
   */
  constructor(options?: number | MemorySessionStorageOptions) {
    const opts = typeof options === "number" ? { ttl: options } : options ?? {};
    if (opts.ttl !== undefined && !(opts.ttl > 0)) {
      throw new RangeError(
        `MemorySessionStorage: ttl must be a positive number of milliseconds, got ${opts.ttl}. ` +
          `Leave it out for sessions that never expire.`,
      );
    }
    if (
      opts.maxEntries !== undefined &&
      !(Number.isInteger(opts.maxEntries) && opts.maxEntries > 0)
    ) {
      throw new RangeError(
        `MemorySessionStorage: maxEntries must be a positive integer, got ${opts.maxEntries}.`,
      );
    }
    this.ttl = opts.ttl === Infinity ? undefined : opts.ttl;
    this.maxEntries = opts.maxEntries;
    // With a TTL or a bound, the map is kept in order of last use, which is
    // also the order of expiry, so the oldest entry is always first.
    this.#ordered = this.ttl !== undefined || this.maxEntries !== undefined;
    // Used by the middleware only while none of this storage's public
    // methods was replaced (see src/memory_access.ts).
    provideMemoryAccess(this, {
      read: (key) => this.#get(key),
      write: (key, data, expected) =>
        expected === undefined || this.#currentVersion(key) === expected
          ? this.#put(key, data)
          : null,
      delete: (key, expected) => this.#deleteIf(key, expected),
    });
  }

  /** The number of sessions held, counting expired ones not yet removed. */
  get size(): number {
    return this.#map.size;
  }

  /**
   * The least recently used live entry. One iterator is kept across calls:
   * a fresh `Map` iterator would walk over every deleted slot at the front of
   * the map, which makes eviction slow once the map is full.
   */
  #oldest(): [string, Entry] | undefined {
    const peeked = this.#peeked;
    if (peeked !== undefined && this.#map.get(peeked[0]) === peeked[1]) return peeked;
    for (let round = 0; round < 2; round++) {
      this.#cursor ??= this.#map.entries();
      for (let r = this.#cursor.next(); !r.done; r = this.#cursor.next()) {
        if (this.#map.get(r.value[0]) === r.value[1]) return (this.#peeked = r.value);
      }
      this.#cursor = undefined;
    }
    return (this.#peeked = undefined);
  }

  #sweep(now: number): void {
    if (this.ttl === undefined) return;
    for (let e = this.#oldest(); e !== undefined && e[1].expires <= now; e = this.#oldest()) {
      this.#map.delete(e[0]);
    }
  }

  #live(key: string, now: number): Entry | undefined {
    const entry = this.#map.get(key);
    if (entry === undefined) return undefined;
    if (entry.expires <= now) {
      this.#map.delete(key);
      return undefined;
    }
    return entry;
  }

  #touch(key: string, entry: Entry, now: number): void {
    if (!this.#ordered) return;
    this.#map.delete(key);
    // A new object, so that a peeked copy of the old position is known stale.
    const expires = this.ttl === undefined ? entry.expires : now + this.ttl;
    this.#map.set(key, { data: entry.data, expires, version: entry.version });
  }

  /**
   * Returns a copy of the session stored under `key` and renews its TTL.
   *
   * @param key The session key.
   */
  read(key: string): S | undefined {
    const entry = this.#get(key);
    return entry === undefined ? undefined : cloneJson(entry.data as S);
  }

  /** The live entry of `key`, its TTL renewed; expired entries are swept first. */
  #get(key: string): Entry | undefined {
    if (!this.#ordered) return this.#map.get(key); // no TTL, no bound: nothing expires
    const now = Date.now();
    this.#sweep(now);
    const entry = this.#live(key, now);
    if (entry !== undefined) this.#touch(key, entry, now);
    return entry;
  }

  /**
   * Stores a copy of `value` under `key`. Throws a `SessionValueError` if the
   * value is not JSON data; nothing is stored then.
   *
   * @param key The session key.
   * @param value The session data.
   */
  write(key: string, value: S): void {
    this.#put(key, copySession(value, key));
  }

  /** Stores a validated copy; returns its new version. */
  #put(key: string, data: unknown): string {
    const version = String(++this.#versions);
    if (!this.#ordered) {
      this.#map.set(key, { data, expires: Infinity, version });
      return version;
    }
    const now = Date.now();
    this.#sweep(now);
    const expires = this.ttl === undefined ? Infinity : now + this.ttl;
    this.#map.delete(key);
    this.#map.set(key, { data, expires, version });
    if (this.maxEntries !== undefined) {
      while (this.#map.size > this.maxEntries) this.#map.delete(this.#oldest()![0]);
    }
    return version;
  }

  /**
   * Reads the session of `key` with its version (for conflict detection).
   * Answers synchronously, as every method of this storage does (typed as
   * `MaybePromise` so that subclasses may override it with an async method).
   *
   * @param key The session key.
   */
  readVersioned(key: string): MaybePromise<VersionedValue<S>> {
    const entry = this.#get(key);
    if (entry === undefined) return { value: undefined, version: null };
    return { value: cloneJson(entry.data as S), version: entry.version };
  }

  /**
   * Writes `value` if the stored version is still `expected`. Throws a
   * `SessionValueError` if the value is not JSON data; nothing is stored then.
   *
   * @param key The session key.
   * @param value The session data.
   * @param expected The version read before, or `null` for "nothing stored".
   * @returns The new version, or `null` if the stored version differs.
   */
  writeIfVersion(key: string, value: S, expected: string | null): MaybePromise<string | null> {
    const data = copySession(value, key);
    if (this.#currentVersion(key) !== expected) return null;
    return this.#put(key, data);
  }

  /**
   * Deletes the session of `key` if its version is still `expected`.
   *
   * @param key The session key.
   * @param expected The version read before, or `null`.
   * @returns Whether the stored version matched.
   */
  deleteIfVersion(key: string, expected: string | null): MaybePromise<boolean> {
    // An `undefined` version (out of contract) deletes unconditionally, as it always did.
    return this.#deleteIf(key, expected);
  }

  /** Deletes `key` if its version is still `expected` (always without one); whether it did. */
  #deleteIf(key: string, expected: string | null | undefined): boolean {
    if (expected !== undefined && this.#currentVersion(key) !== expected) return false;
    this.#map.delete(key);
    return true;
  }

  #currentVersion(key: string): string | null {
    // Without a TTL nothing expires, so the clock is not read.
    const entry = this.ttl === undefined ? this.#map.get(key) : this.#live(key, Date.now());
    return entry === undefined ? null : entry.version;
  }

  /**
   * Takes the lease of `key` for `owner` unless another owner holds it.
   *
   * @param key The session key.
   * @param owner Who takes it.
   * @param ttl How long it lasts, in ms.
   */
  acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    const now = Date.now();
    const lease = this.#leases.get(key);
    if (lease !== undefined && lease.owner !== owner && lease.expires > now) {
      return Promise.resolve(false);
    }
    this.#leases.set(key, { owner, expires: now + ttl });
    return Promise.resolve(true);
  }

  /**
   * Extends `owner`'s lease of `key`.
   *
   * @param key The session key.
   * @param owner The holder.
   * @param ttl How long it lasts from now, in ms.
   */
  renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    const lease = this.#leases.get(key);
    const now = Date.now();
    if (lease === undefined || lease.owner !== owner || lease.expires <= now) {
      return Promise.resolve(false);
    }
    lease.expires = now + ttl;
    return Promise.resolve(true);
  }

  /**
   * Gives up `owner`'s lease of `key`.
   *
   * @param key The session key.
   * @param owner The holder.
   */
  releaseLease(key: string, owner: string): Promise<void> {
    if (this.#leases.get(key)?.owner === owner) this.#leases.delete(key);
    return Promise.resolve();
  }

  /**
   * Removes the session stored under `key`.
   *
   * @param key The session key.
   */
  delete(key: string): void {
    this.#map.delete(key);
  }

  /**
   * Tells whether an unexpired session is stored under `key`.
   *
   * @param key The session key.
   */
  has(key: string): boolean {
    return this.#live(key, Date.now()) !== undefined;
  }

  /** Returns the keys of all unexpired sessions. */
  readAllKeys(): string[] {
    const now = Date.now();
    const keys: string[] = [];
    for (const [key, entry] of this.#map) if (entry.expires > now) keys.push(key);
    return keys;
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

  /** Returns copies of all unexpired sessions. */
  readAllValues(): S[] {
    return this.readAllEntries().map(([, value]) => value);
  }

  /** Returns the keys and copies of all unexpired sessions. */
  readAllEntries(): [key: string, value: S][] {
    const now = Date.now();
    this.#sweep(now);
    const entries: [string, S][] = [];
    for (const [key, entry] of this.#map) {
      if (entry.expires > now) entries.push([key, cloneJson(entry.data as S)]);
    }
    return entries;
  }
}

registerMemoryClass(MemorySessionStorage.prototype as never);
