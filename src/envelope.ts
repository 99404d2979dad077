/**
 * The envelope `enhanceStorage()` stores a session in, grammY's format
 * (`{ v, __d, e }`): telling an envelope from plain data, migrating it,
 * deciding when it expires and when a read renews it, and the version tokens
 * that carry its `v` through a conditional write.
 *
 * @module
 */

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

const ENVELOPE_KEYS = new Set(["__d", "v", "e"]);

/** How far ahead of a write its expiry is stored, in units of the time to live. */
const LIFETIME = 1.5;

function isEnvelope(value: unknown): value is Enhance<unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  if (!Object.hasOwn(value, "__d")) return false;
  for (const name of Object.keys(value)) if (!ENVELOPE_KEYS.has(name)) return false;
  const { v, e } = value as Enhance<unknown>;
  return (v === undefined || typeof v === "number") && (e === undefined || typeof e === "number");
}

/** What {@link Envelopes.open} finds in a stored value. */
export type Opened<T> =
  | { readonly expired: true }
  | {
    readonly expired: false;
    /** The data, migrated to the newest version. */
    readonly data: T;
    /** The migration version to store it at (the stored one without migrations). */
    readonly v: number | undefined;
    /** Whether a read should write it back: migrated, or its expiry is due for renewal. */
    readonly rewrite: boolean;
  };

/**
 * The rules of one `enhanceStorage()` wrapper's envelopes, from its
 * migrations and time to live (checked here: a bad option throws).
 *
 * @example
 * ```ts
 * import { Envelopes } from "./envelope.ts";
 *
 * const format = new Envelopes<{ n: number }>(undefined, 60_000);
 * const opened = format.open("42", format.wrap({ n: 1 }, undefined), Date.now());
 * opened.expired; // false
 * ```
 */
export class Envelopes<T> {
  /** Migration versions, in order. */
  readonly #versions: number[];
  /** The newest migration version, if there are migrations. */
  readonly latest: number | undefined;
  /** The time to live in ms, if any. */
  readonly ttl: number | undefined;
  /** How far ahead a write stores the expiry. */
  readonly #lifetime: number | undefined;
  /**
   * Without migrations the stored `v` must survive a rewrite, so the
   * wrapper keeps it: in the version token for conditional writes, and
   * remembered per key for plain ones.
   */
  readonly keepV: boolean;

  constructor(readonly migrations: Migrations | undefined, ttl: number | undefined) {
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
    this.#versions = versions;
    this.latest = versions.at(-1);
    this.ttl = ttl;
    this.#lifetime = ttl === undefined ? undefined : ttl * LIFETIME;
    this.keepV = this.latest === undefined;
  }

  /** Unwraps, checks expiry and migrates; reports whether to write back. */
  open(key: string, raw: unknown, now: number): Opened<T> {
    const { latest, ttl } = this;
    const lifetime = this.#lifetime;
    const env = isEnvelope(raw) ? raw as Enhance<T> : { __d: raw as T };
    if (ttl !== undefined && env.e !== undefined && env.e <= now) return { expired: true };
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
      for (const version of this.#versions) {
        if (version > from) {
          data = this.migrations![version](data);
          migrated = true;
        }
      }
    }
    const left = env.e === undefined ? undefined : env.e - now;
    const renew = lifetime !== undefined && (left === undefined || left <= ttl! || left > lifetime);
    const v = latest ?? env.v;
    return { expired: false, data, v, rewrite: migrated || renew };
  }

  /**
   * Whether the stored `raw` holds a session as this wrapper reads it: there,
   * and not expired. Nothing is migrated, so data a migration cannot open
   * (or stored by newer code) still counts as held.
   */
  holds(raw: unknown, now: number): boolean {
    if (raw == null) return false;
    if (this.ttl === undefined || !isEnvelope(raw)) return true;
    return raw.e === undefined || raw.e > now;
  }

  /** The envelope a write stores: `data` at version `v`, expiring 1.5 times the ttl ahead. */
  wrap(data: T, v: number | undefined): Enhance<T> {
    const env: Enhance<T> = { __d: data };
    if (v !== undefined) env.v = v;
    if (this.#lifetime !== undefined) env.e = Date.now() + this.#lifetime;
    return env;
  }

  /** The version token handed out: the wrapped storage's, with the stored `v` when it is kept. */
  token(version: string | null, v: number | undefined): string | null {
    return version === null || !this.keepV ? version : `${v ?? ""}:${version}`;
  }

  /** Takes a token of {@link token} apart; a token that is not one is the wrapped storage's. */
  untoken(token: string | null): { version: string | null; v: number | undefined } {
    if (token === null || !this.keepV) return { version: token, v: undefined };
    const at = token.indexOf(":");
    const v = at < 0 ? NaN : at === 0 ? undefined : Number(token.slice(0, at));
    // Not one of ours: hand it to the wrapped storage as it is.
    if (Number.isNaN(v)) return { version: token, v: undefined };
    return { version: token.slice(at + 1), v };
  }
}
