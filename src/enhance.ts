/**
 * `enhanceStorage()`: migrations and expiry on top of any storage, in
 * grammY's stored format (`{ v, __d, e }`).
 *
 * @module
 */

import type { StorageAdapter } from "./storage.ts";
import {
  type ConditionalStorage,
  isConditionalStorage,
  isLeaseStorage,
  type LeaseStorage,
  type VersionedValue,
} from "./capabilities.ts";
import { type Enhance, Envelopes, type Migrations } from "./envelope.ts";
import { resumeByKeys } from "./listing.ts";

export type { Enhance, Migrations } from "./envelope.ts";

/**
 * The key of a read without side effects on an `enhanceStorage` wrapper:
 * the session as `read` gives it, but nothing is written back (no renewal, no
 * migration write-back, no removal of expired data). `copySessions` and
 * `exportSessions` read a source key by key with it where it is there, so
 * that copying leaves the source as it was. Internal to sessionkit.
 */
export const PEEK: unique symbol = Symbol.for("sessionkit.enhance.peek");

/**
 * The key under which an `enhanceStorage` wrapper holds the storage it
 * wraps, so that `copySessions` can see that two storages are one underneath
 * (a copy into itself, overlapping Redis namespaces). Internal to sessionkit.
 */
export const WRAPPED: unique symbol = Symbol.for("sessionkit.enhance.wrapped");

/** Options of {@link enhanceStorage}, as in grammY. */
export interface MigrationOptions<T> {
  /** The storage to wrap. */
  storage: StorageAdapter<Enhance<T>>;
  /** Migrations to run on data stored at an older version. */
  migrations?: Migrations;
  /**
   * A session is kept at least this many milliseconds after its last read or
   * write, and is gone at the latest 1.5 times as long after it.
   */
  millisecondsToLive?: number;
}

/** Reads made by one versioned read whose write-back keeps losing to other writers. */
const READ_ATTEMPTS = 3;
/** How many keys' stored `v` are remembered for plain writes (no migrations). */
const REMEMBERED_KEYS = 10_000;

/** A read through the wrapper: the data, the version it is at, the wrapped storage's version. */
interface Loaded<T> {
  data: T | undefined;
  v: number | undefined;
  version: string | null;
}

/**
 * Adds migrations and a time to live to a storage, reading and writing
 * grammY's envelope format so data stored by grammY's `enhanceStorage` keeps
 * working. Differences from grammY's, all deliberate fixes:
 *
 * - Versions compare as numbers: a migration `1.5` runs between `1` and `2`.
 * - Data written by a newer version than the newest migration is refused with
 *   a clear error instead of being silently treated as current.
 * - Stored user data that merely has a `__d` field (with other fields beside
 *   it) is read as data, not mistaken for an envelope.
 * - `has`, `readAllKeys`, `readAllValues` and `readAllEntries` of the wrapped
 *   storage stay available, unwrapped, skipping expired sessions (they never
 *   renew or write). `has` and `readAllKeys` do not migrate: a session this
 *   wrapper cannot open (stored by newer code, or a migration throws on it)
 *   is held and listed all the same; reading it, or listing values, throws.
 * - A conditional write with the expected version `null` ("nothing
 *   stored") also succeeds over an expired session not removed yet, since
 *   it reads as nothing (`copySessions` into this wrapper relies on it).
 * - Data migrated on read is written back once, at the new version.
 * - The migration version `v` is never lowered. With migrations, data is
 *   written at the newest one. Without migrations, the stored `v` is kept: by
 *   the rewrites this wrapper makes on read, by `writeIfVersion` (the `v` of
 *   the read whose version it is given) and by `write` (the `v` this wrapper
 *   last read or wrote for the key, remembered for the 10 000 most recent
 *   keys that have one; data of a key it has not seen is written without `v`).
 * - Expiry is renewed by reads, not only by writes, because sessionkit's
 *   middleware writes only changed sessions. What you can rely on, with `ttl`
 *   for `millisecondsToLive`: a session read or written at time `t` (through
 *   `read`, `readVersioned`, `write` or `writeIfVersion`) is still there at
 *   `t + ttl`, and is gone from `t + 1.5 * ttl` on unless it is used again
 *   (data last written with a longer time to live keeps the expiry it was
 *   written with until it is read).
 *   A write stores the expiry `e` 1.5 `ttl` ahead; a read rewrites the
 *   envelope only when `ttl` or less is left (or more than 1.5 `ttl`, after
 *   `ttl` was lowered), so a session that is only read is rewritten at most
 *   once every `ttl / 2`. grammY's session instead rewrites on every update,
 *   and its sessions are gone exactly `ttl` after their last use.
 * - The capabilities of the wrapped storage are kept: with `readVersioned`,
 *   `writeIfVersion` and `deleteIfVersion` (conflict detection) the result
 *   has them too, so `onConflict` works through it; with `acquireLease`,
 *   `renewLease` and `releaseLease` they are passed through, so `lock` does.
 *   On such a storage, the renewal or migration write-back made by a read is
 *   conditional: it never overwrites what another process wrote in the
 *   meantime (it reads again, up to three reads in all, and gives what that
 *   process wrote), and the read returns the version after its own write, so
 *   the caller's next conditional write does not conflict with it. It can
 *   make another process's pending conditional write conflict (at most once
 *   per `ttl / 2` per key): a merge function then merges it, with
 *   `onConflict: "error"` that update fails. An expired session reads as
 *   nothing, with a version that a later conditional write succeeds with if
 *   nobody else wrote. Version tokens of this wrapper are its own: hand them
 *   only to this wrapper, not to the wrapped storage.
 *
 * @example
 * ```ts
 * import { type Enhance, enhanceStorage, MemorySessionStorage, session } from "@sessionkit/grammy";
 *
 * type Pets = { pets: string[] };
 * const middleware = session({
 *   initial: (): Pets => ({ pets: [] }),
 *   storage: enhanceStorage<Pets>({
 *     storage: new MemorySessionStorage<Enhance<Pets>>(),
 *     millisecondsToLive: 7 * 24 * 60 * 60 * 1000, // kept 7 to 10.5 days after the last use
 *     migrations: {
 *       1: (old: { pet?: string }): Pets => ({ pets: old.pet ? [old.pet] : [] }),
 *     },
 *   }),
 *   // works through enhanceStorage: the wrapped storage's conditional writes are kept
 *   onConflict: (stored, mine) => ({
 *     pets: [...new Set([...(stored?.pets ?? []), ...(mine?.pets ?? [])])],
 *   }),
 * });
 * ```
 *
 * @param options The storage, migrations and time to live.
 * @returns A storage adapter for the session data itself, with the
 *   conditional writes and leases of the wrapped storage where it has them.
 */
export function enhanceStorage<T>(
  options: MigrationOptions<T>,
): StorageAdapter<T> & Partial<ConditionalStorage<T> & LeaseStorage> {
  const { storage } = options;
  const format = new Envelopes<T>(options.migrations, options.millisecondsToLive);
  const { keepV, latest, ttl } = format;
  const seenV = new Map<string, number>();

  function remember(key: string, v: number | undefined): void {
    if (!keepV) return;
    seenV.delete(key);
    if (v === undefined) return;
    seenV.set(key, v);
    if (seenV.size > REMEMBERED_KEYS) seenV.delete(seenV.keys().next().value!);
  }

  /** A plain read; `repair` writes back renewals and migrations, and deletes expired data. */
  async function load(key: string, repair: boolean): Promise<T | undefined> {
    const raw = await storage.read(key);
    if (raw == null) {
      if (repair) remember(key, undefined);
      return undefined;
    }
    const opened = format.open(key, raw, Date.now());
    if (opened.expired) {
      if (repair) {
        remember(key, undefined);
        await storage.delete(key);
      }
      return undefined;
    }
    if (repair) {
      remember(key, opened.v);
      if (opened.rewrite) await storage.write(key, format.wrap(opened.data, opened.v));
    }
    return opened.data;
  }

  /**
   * A read through conditional writes: a renewal, migration write-back or
   * removal of expired data happens only if nobody wrote since the read; if
   * somebody did, what they wrote is read instead.
   */
  async function loadVersioned(
    cond: ConditionalStorage<Enhance<T>>,
    key: string,
  ): Promise<Loaded<T>> {
    for (let attempt = 1;; attempt++) {
      const { value: raw, version } = await cond.readVersioned(key);
      const last = attempt >= READ_ATTEMPTS; // the last read writes nothing
      let result: Loaded<T> | undefined;
      if (raw == null) {
        result = { data: undefined, v: undefined, version };
      } else {
        const opened = format.open(key, raw, Date.now());
        if (opened.expired) {
          if (last) result = { data: undefined, v: undefined, version };
          else if (await cond.deleteIfVersion(key, version)) {
            result = { data: undefined, v: undefined, version: null };
          }
        } else if (!opened.rewrite || last) {
          result = { data: opened.data, v: opened.v, version };
        } else {
          const next = await cond.writeIfVersion(key, format.wrap(opened.data, opened.v), version);
          if (next !== null) result = { data: opened.data, v: opened.v, version: next };
        }
      }
      if (result !== undefined) {
        remember(key, result.v);
        return result;
      }
    }
  }

  async function* entries(): AsyncGenerator<[string, T]> {
    const now = Date.now();
    if (storage.readAllEntries !== undefined) {
      for await (const [key, raw] of storage.readAllEntries()) {
        if (raw == null) continue;
        const opened = format.open(key, raw, now);
        if (!opened.expired) yield [key, opened.data];
      }
    } else if (storage.readAllKeys !== undefined) {
      for await (const key of storage.readAllKeys()) {
        const data = await load(key, false);
        if (data !== undefined) yield [key, data];
      }
    }
  }

  const cond = isConditionalStorage<Enhance<T>>(storage) ? storage : undefined;
  const enhanced: StorageAdapter<T> & Partial<ConditionalStorage<T> & LeaseStorage> = {
    read: async (key) => cond ? (await loadVersioned(cond, key)).data : await load(key, true),
    write: (key, value) => storage.write(key, format.wrap(value, keepV ? seenV.get(key) : latest)),
    delete: (key) => {
      seenV.delete(key);
      return storage.delete(key);
    },
  };
  // Whether a session is held, without migrating it: a session that cannot be
  // opened here (a migration throws on it, or newer code stored it) is held
  // all the same, and listed; reading it is what fails.
  // For copySessions (see PEEK): a read that writes nothing back.
  Object.defineProperty(enhanced, PEEK, { value: (key: string) => load(key, false) });
  Object.defineProperty(enhanced, WRAPPED, { value: storage });
  enhanced.has = async (key) => format.holds(await storage.read(key), Date.now());
  if (storage.readAllEntries !== undefined || storage.readAllKeys !== undefined) {
    enhanced.readAllEntries = entries;
    enhanced.readAllKeys = async function* () {
      const now = Date.now();
      if (ttl === undefined && storage.readAllKeys !== undefined) {
        yield* storage.readAllKeys();
        return;
      }
      // With a TTL the stored envelopes say what has expired. Listed with the
      // values where the wrapped storage can; if that listing fails part way
      // (one value it cannot decode fails a page of it), the rest is listed
      // by keys and read one by one, and a session that cannot be read is
      // listed: it is held, reading it is what fails.
      const listing = storage.readAllEntries === undefined
        ? (async function* () {
          for await (const key of storage.readAllKeys!()) yield { key, given: false } as const;
        })()
        : resumeByKeys(() => storage.readAllEntries!(), storage.readAllKeys?.bind(storage));
      for await (const item of listing) {
        if (item.given) {
          if (format.holds(item.value, now)) yield item.key;
          continue;
        }
        let raw: unknown;
        try {
          raw = await storage.read(item.key);
        } catch {
          yield item.key;
          continue;
        }
        if (format.holds(raw, now)) yield item.key;
      }
    };
    enhanced.readAllValues = async function* () {
      for await (const [, value] of entries()) yield value;
    };
  }
  if (cond !== undefined) {
    // Its tokens carry the wrapped storage's versions: new with each write
    // exactly when those are.
    if (cond.uniqueVersions === true) {
      Object.defineProperty(enhanced, "uniqueVersions", { value: true, enumerable: true });
    }
    enhanced.readVersioned = async (key): Promise<VersionedValue<T>> => {
      const { data, v, version } = await loadVersioned(cond, key);
      return { value: data, version: format.token(version, v) };
    };
    enhanced.writeIfVersion = async (key, value, expected) => {
      const { version, v } = format.untoken(expected);
      const env = format.wrap(value, keepV ? v : latest);
      let next = await cond.writeIfVersion(key, env, version);
      // "Nothing stored" (null) also holds over an expired session that was
      // not removed yet: this wrapper reads it as nothing, so a create-if-
      // absent (a copy into this storage, a first save) replaces it, if
      // nobody wrote it in the meantime.
      for (
        let attempt = 1;
        next === null && version === null && attempt < READ_ATTEMPTS;
        attempt++
      ) {
        const stored = await cond.readVersioned(key);
        if (stored.value != null && format.holds(stored.value, Date.now())) break;
        next = await cond.writeIfVersion(key, env, stored.value == null ? null : stored.version);
      }
      if (next !== null) remember(key, env.v);
      return format.token(next, env.v);
    };
    enhanced.deleteIfVersion = async (key, expected) => {
      const deleted = await cond.deleteIfVersion(key, format.untoken(expected).version);
      if (deleted) seenV.delete(key);
      return deleted;
    };
  }
  if (isLeaseStorage(storage)) {
    enhanced.acquireLease = (key, owner, ms) => storage.acquireLease(key, owner, ms);
    enhanced.renewLease = (key, owner, ms) => storage.renewLease(key, owner, ms);
    enhanced.releaseLease = (key, owner) => storage.releaseLease(key, owner);
    // Read when the middleware is created, from the storage as it is then.
    Object.defineProperty(enhanced, "leaseProblem", { get: () => storage.leaseProblem });
  }
  return enhanced;
}
