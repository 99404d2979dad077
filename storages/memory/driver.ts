/**
 * The memory driver behind `MemorySessionStorage`: validated copies of
 * sessions in a `Map`, answered synchronously. The same object is the
 * middleware's direct access ({@link MemoryAccess}), so both ways in run
 * this code.
 *
 * With a TTL or `maxEntries`, the map is kept in order of last use, which
 * is also the order of expiry, so the oldest entry is always first:
 * expired entries are swept from the front while the storage is used, and
 * eviction takes the front entry. There are no timers.
 *
 * @module
 */

import type { LockedSave } from "../../src/capabilities.ts";
import type { ScanPage, SessionDriver, StoredRecord } from "../shared/driver.ts";
import type { HeldEntry, MemoryAccess } from "../../src/memory_access.ts";
import { Evictions, MIN_REMEMBERED } from "./evictions.ts";

/** One stored session. Never changed: a renewal stores a new entry. */
class Entry implements StoredRecord<unknown>, HeldEntry {
  constructor(
    /** A validated copy of the session, never handed out and never changed. */
    readonly payload: unknown,
    readonly version: string,
    /** Epoch ms, or `Infinity`. */
    readonly expires: number,
  ) {}
}

/** What a memory driver is configured with (already checked). */
export interface MemoryDriverOptions {
  /** Time to live in ms, or `undefined` for none. */
  ttl: number | undefined;
  /** The most sessions kept, or `undefined` for no bound. */
  maxEntries: number | undefined;
}

/** Sessions in a `Map` inside the process, as validated copies. */
export class MemoryDriver implements SessionDriver<unknown>, MemoryAccess {
  readonly name = "MemorySessionStorage";
  /** Every write draws a new version. */
  readonly uniqueVersions = true;
  readonly synchronous = true;
  readonly #ttl: number | undefined;
  readonly #maxEntries: number | undefined;
  readonly #map = new Map<string, Entry>();
  readonly #leases = new Map<string, { owner: string; expires: number }>();
  /** Whether the map is kept in order of last use (with a TTL or a bound). */
  readonly #ordered: boolean;
  /** With `maxEntries`: the versions of recently evicted sessions. */
  readonly #evicted: Evictions | undefined;
  #versions = 0;
  #cursor: Iterator<[string, Entry]> | undefined;
  #peeked: [string, Entry] | undefined;

  /** Creates an empty driver. */
  constructor({ ttl, maxEntries }: MemoryDriverOptions) {
    this.#ttl = ttl;
    this.#maxEntries = maxEntries;
    this.#ordered = ttl !== undefined || maxEntries !== undefined;
    this.#evicted = maxEntries === undefined
      ? undefined
      : new Evictions(Math.max(maxEntries, MIN_REMEMBERED));
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

  /** Removes the expired entries, all at the front of the ordered map. */
  #sweep(now: number): void {
    if (this.#ttl === undefined) return;
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

  /**
   * The live entry of `key`, moved to the end of the order of use and its
   * TTL renewed; expired entries are swept first. The version stays.
   */
  read(key: string): Entry | undefined {
    if (!this.#ordered) return this.#map.get(key); // no TTL, no bound: nothing expires
    const now = Date.now();
    this.#sweep(now);
    const entry = this.#live(key, now);
    if (entry === undefined) return undefined;
    this.#map.delete(key);
    // A new object, so that a peeked copy of the old position is known stale.
    const expires = this.#ttl === undefined ? Infinity : now + this.#ttl;
    const renewed = new Entry(entry.payload, entry.version, expires);
    this.#map.set(key, renewed);
    return renewed;
  }

  /**
   * Whether the stored version of `key` is `expected`. A missing key
   * matches `null`, and also the version it had when `maxEntries` evicted
   * it, as long as nothing landed on it since: eviction is not a change.
   */
  #matches(key: string, expected: string | null): boolean {
    // Without a TTL nothing expires, so the clock is not read.
    const entry = this.#ttl === undefined ? this.#map.get(key) : this.#live(key, Date.now());
    if (entry !== undefined) return entry.version === expected;
    return expected === null || (expected === this.#evicted?.versionOf(key));
  }

  /** Keeps `payload` (a validated copy nobody else holds) under `key`. */
  write(key: string, payload: unknown, expected: string | null | undefined): string | null {
    if (expected !== undefined && !this.#matches(key, expected)) return null;
    const version = String(++this.#versions);
    if (!this.#ordered) {
      this.#map.set(key, new Entry(payload, version, Infinity));
      return version;
    }
    const now = Date.now();
    this.#sweep(now);
    const expires = this.#ttl === undefined ? Infinity : now + this.#ttl;
    // A key that was not stored may have been evicted: its old version is stale now.
    if (!this.#map.delete(key) && this.#evicted !== undefined && !this.#evicted.empty) {
      this.#evicted.forget(key);
    }
    this.#map.set(key, new Entry(payload, version, expires));
    const max = this.#maxEntries;
    if (max !== undefined) {
      while (this.#map.size > max) {
        const [oldest, entry] = this.#oldest()!;
        this.#map.delete(oldest);
        this.#evicted!.remember(oldest, entry.version);
      }
    }
    return version;
  }

  /** Deletes `key` (under the same condition as a write); whether the condition held. */
  delete(key: string, expected: string | null | undefined): boolean {
    if (expected !== undefined && !this.#matches(key, expected)) return false;
    this.#map.delete(key);
    this.#evicted?.forget(key);
    return true;
  }

  /** Whether an unexpired session is stored under `key`; renews nothing. */
  has(key: string): boolean {
    return this.#live(key, Date.now()) !== undefined;
  }

  /** Every unexpired session in one page: a synchronous listing gains nothing from pages. */
  scan(_cursor: string | undefined, _limit: number, values: boolean): ScanPage<unknown> {
    const now = Date.now();
    this.#sweep(now);
    const keys: string[] = [];
    const payloads: unknown[] | undefined = values ? [] : undefined;
    for (const [key, entry] of this.#map) {
      if (entry.expires <= now) continue;
      keys.push(key);
      payloads?.push(entry.payload);
    }
    return { keys, payloads, cursor: undefined };
  }

  /** Takes the lease of `key` for `owner` unless another owner holds it. */
  acquireLease(key: string, owner: string, ttl: number): boolean {
    const now = Date.now();
    const lease = this.#leases.get(key);
    if (lease !== undefined && lease.owner !== owner && lease.expires > now) return false;
    this.#leases.set(key, { owner, expires: now + ttl });
    return true;
  }

  /** Extends `owner`'s unexpired lease of `key`. */
  renewLease(key: string, owner: string, ttl: number): boolean {
    const now = Date.now();
    const lease = this.#held(key, owner, now);
    if (lease === undefined) return false;
    lease.expires = now + ttl;
    return true;
  }

  /** `owner`'s lease of `key` if it has not expired at `now`. */
  #held(key: string, owner: string, now: number): { expires: number } | undefined {
    const lease = this.#leases.get(key);
    return lease !== undefined && lease.owner === owner && lease.expires > now ? lease : undefined;
  }

  /** Gives up `owner`'s lease of `key`. */
  releaseLease(key: string, owner: string): void {
    if (this.#leases.get(key)?.owner === owner) this.#leases.delete(key);
  }

  /**
   * While `owner` holds an unexpired lease of `key`, writes (or, for
   * `undefined`, deletes) under `expected` and gives the lease up, in one
   * synchronous step: no other caller can take the lease in between.
   */
  saveAndReleaseLease(
    key: string,
    payload: unknown,
    expected: string | null | undefined,
    owner: string,
  ): LockedSave {
    return this.#lockedSave(key, payload, expected, owner, true);
  }

  /** As {@link MemoryDriver.saveAndReleaseLease}, keeping the lease. */
  saveKeepingLease(
    key: string,
    payload: unknown,
    expected: string | null | undefined,
    owner: string,
  ): LockedSave {
    return this.#lockedSave(key, payload, expected, owner, false);
  }

  #lockedSave(
    key: string,
    payload: unknown,
    expected: string | null | undefined,
    owner: string,
    release: boolean,
  ): LockedSave {
    if (this.#held(key, owner, Date.now()) === undefined) return { saved: false, reason: "lease" };
    const version = payload === undefined
      ? (this.delete(key, expected) ? null : false)
      : this.write(key, payload, expected) ?? false;
    if (version === false) return { saved: false, reason: "conflict" };
    if (release) this.#leases.delete(key);
    return { saved: true, version };
  }
}
