/**
 * `enhanceStorage()`: migrations and expiry on top of any storage, in
 * grammY's stored format (`{ v, __d, e }`).
 *
 * @module
 */

import type { StorageAdapter } from "./storage.ts";
import { SessionError } from "./errors.ts";

/** The stored envelope, the same as grammY's `Enhance`. */
export interface Enhance<T> {
  /** The migration version the data is at. */
  v?: number;
  /** The session data. */
  __d: T;
  /** Expiry as a Unix time in milliseconds. */
  e?: number;
}

/**
 * Migration functions by version. Versions compare as numbers, so `1.5` runs
 * between `1` and `2`.
 */
export interface Migrations {
  /** Turns data of the previous version into data of this version. */
  // deno-lint-ignore no-explicit-any
  [version: number]: (old: any) => any;
}

/** Options of {@link enhanceStorage}, as in grammY. */
export interface MigrationOptions<T> {
  /** The storage to wrap. */
  storage: StorageAdapter<Enhance<T>>;
  /** Migrations to run on data stored at an older version. */
  migrations?: Migrations;
  /** Sessions not used for this many milliseconds are gone. */
  millisecondsToLive?: number;
}

const ENVELOPE_KEYS = new Set(["__d", "v", "e"]);

function isEnvelope(value: unknown): value is Enhance<unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  if (!Object.hasOwn(value, "__d")) return false;
  for (const name of Object.keys(value)) if (!ENVELOPE_KEYS.has(name)) return false;
  const { v, e } = value as Enhance<unknown>;
  return (v === undefined || typeof v === "number") && (e === undefined || typeof e === "number");
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
 *   storage stay available, unwrapped, skipping expired sessions.
 * - Expiry slides: a read renews it, rewriting the envelope only when less
 *   than half of the time to live is left, so read-only updates rarely write.
 * - Data migrated on read is written back once, at the new version.
 *
 * @example
 * ```ts
 * import { enhanceStorage, MemorySessionStorage, session } from "@sessionkit/grammy";
 *
 * const middleware = session({
 *   initial: () => ({ pets: [] as string[] }),
 *   storage: enhanceStorage({
 *     storage: new MemorySessionStorage(),
 *     millisecondsToLive: 7 * 24 * 60 * 60 * 1000,
 *     migrations: {
 *       1: (old: { pet?: string }) => ({ pets: old.pet ? [old.pet] : [] }),
 *     },
 *   }),
 * });
 * ```
 *
 * @param options The storage, migrations and time to live.
 * @returns A storage adapter for the session data itself.
 */
export function enhanceStorage<T>(options: MigrationOptions<T>): StorageAdapter<T> {
  const { storage, migrations, millisecondsToLive: ttl } = options;
  if (ttl !== undefined && !(ttl > 0)) {
    throw new RangeError(
      `enhanceStorage: millisecondsToLive must be a positive number, got ${ttl}.`,
    );
  }
  const versions = migrations === undefined
    ? []
    : Object.keys(migrations).map(Number).sort((a, b) => a - b);
  if (migrations !== undefined && versions.length === 0) {
    throw new Error("enhanceStorage: migrations is empty; give at least one or leave it out.");
  }
  if (versions.some((v) => !Number.isFinite(v))) {
    throw new Error("enhanceStorage: every migration key must be a number.");
  }
  const latest = versions.at(-1);

  /** Unwraps, checks expiry and migrates; reports whether to write back. */
  function open(key: string, raw: unknown, now: number) {
    const env = isEnvelope(raw) ? raw as Enhance<T> : { __d: raw as T };
    if (ttl !== undefined && env.e !== undefined && env.e <= now) return { expired: true } as const;
    let data = env.__d;
    let migrated = false;
    if (latest !== undefined) {
      const from = env.v ?? -Infinity;
      if (from > latest) {
        throw new SessionError(
          `The session of key "${key}" was stored at migration version ${from}, but the newest ` +
            `migration here is ${latest}. It was written by newer code; refusing to read it as ` +
            `older data. Deploy the code with migration ${from}, or add it to migrations.`,
          key,
        );
      }
      for (const version of versions) {
        if (version > from) {
          data = migrations![version](data);
          migrated = true;
        }
      }
    }
    const stale = ttl !== undefined && (env.e === undefined || env.e - now < ttl / 2);
    return { expired: false, data, rewrite: migrated || stale } as const;
  }

  function wrap(data: T): Enhance<T> {
    const env: Enhance<T> = { __d: data };
    if (latest !== undefined) env.v = latest;
    if (ttl !== undefined) env.e = Date.now() + ttl;
    return env;
  }

  async function load(key: string, repair: boolean): Promise<T | undefined> {
    const raw = await storage.read(key);
    if (raw == null) return undefined;
    const opened = open(key, raw, Date.now());
    if (opened.expired) {
      if (repair) await storage.delete(key);
      return undefined;
    }
    if (repair && opened.rewrite) await storage.write(key, wrap(opened.data));
    return opened.data;
  }

  async function* entries(): AsyncGenerator<[string, T]> {
    const now = Date.now();
    if (storage.readAllEntries !== undefined) {
      for await (const [key, raw] of storage.readAllEntries()) {
        if (raw == null) continue;
        const opened = open(key, raw, now);
        if (!opened.expired) yield [key, opened.data];
      }
    } else if (storage.readAllKeys !== undefined) {
      for await (const key of storage.readAllKeys()) {
        const data = await load(key, false);
        if (data !== undefined) yield [key, data];
      }
    }
  }

  const enhanced: StorageAdapter<T> = {
    read: (key) => load(key, true),
    write: (key, value) => storage.write(key, wrap(value)),
    delete: (key) => storage.delete(key),
  };
  enhanced.has = async (key) => (await load(key, false)) !== undefined;
  if (storage.readAllEntries !== undefined || storage.readAllKeys !== undefined) {
    enhanced.readAllEntries = entries;
    enhanced.readAllKeys = async function* () {
      for await (const [key] of entries()) yield key;
    };
    enhanced.readAllValues = async function* () {
      for await (const [, value] of entries()) yield value;
    };
  }
  return enhanced;
}
