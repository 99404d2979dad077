/**
 * The Deno KV driver behind `DenoKvStorage`: sessions as JSON text in KV
 * records (see `records.ts` for the layout), versions kept in each head,
 * expiry kept by reads (`expiry.ts`) and changes decided as `writes.ts`
 * explains.
 *
 * @module
 */

import { checkOptionNames, checkTtl } from "../shared/options.ts";
import { SessionError } from "../../src/errors.ts";
import type { KeyRules, ScanPage, SessionDriver, StoredRecord } from "../shared/driver.ts";
import { readGeneration } from "./chunks.ts";
import { keepExpiry } from "./expiry.ts";
import { ABSENT, HeadMemory, seenOf } from "./heads.ts";
import type { KvKeyPartLike, KvLike } from "./kv.ts";
import { dropLease, leaseGuard, LeaseLost, putLease } from "./leases.ts";
import type { LockedSave } from "../../src/capabilities.ts";
import { keyBytes, keyPartBytes, KV_LIMITS } from "./limits.ts";
import { isExpired, Layout, parseHead } from "./records.ts";
import { ATTEMPTS, deleteSession, type KvContext, removeHead, storeSession } from "./writes.ts";

/** Listings with values fetch this many sessions per page at most. */
const VALUE_PAGE = 32;

// `ignoreBOM`: a payload's leading U+FEFF is its own, not a byte order mark.
const text = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * A {@link SessionDriver} over a Deno KV database.
 *
 * @example
 * ```ts
 * import { DriverStorage } from "../shared/driver_storage.ts";
 * import { KvDriver } from "./driver.ts";
 *
 * const kv = await Deno.openKv(":memory:");
 * const storage = new DriverStorage<{ count: number }>(new KvDriver(kv, { prefix: ["s"] }));
 * await storage.write("42", { count: 1 });
 * kv.close();
 * ```
 */
export class KvDriver implements SessionDriver<string> {
  /** The storage's name. */
  readonly name = "DenoKvStorage";
  /** Every write draws a new version. */
  readonly uniqueVersions = true;
  /** What KV accepts as a session key under this prefix. */
  readonly keys: KeyRules;
  /** The KV key parts under which the records live. */
  readonly prefix: readonly KvKeyPartLike[];
  /** The time to live in ms, `undefined` for none. */
  readonly ttl: number | undefined;
  readonly #ctx: KvContext;
  /** The bytes of the longest KV key of a session, less those of the session key part. */
  readonly #fixed: number;

  /**
   * Creates the driver; throws on a bad prefix or ttl.
   *
   * @param kv A `Deno.Kv`, or the `Kv` of `npm:@deno/kv`.
   * @param options The key prefix (default `["sessions"]`) and the time to live.
   */
  constructor(kv: KvLike, options: { prefix?: readonly KvKeyPartLike[]; ttl?: number } = {}) {
    const api = kv as Partial<Record<"get" | "getMany" | "list" | "atomic" | "then", unknown>>;
    if (typeof api?.then === "function") {
      throw new TypeError(
        "DenoKvStorage: the first argument is a promise: await Deno.openKv() (or openKv from " +
          "npm:@deno/kv) first, then pass the database: new DenoKvStorage(await Deno.openKv()).",
      );
    }
    if (["get", "getMany", "list", "atomic"].some((m) => typeof api?.[m as "get"] !== "function")) {
      throw new TypeError(
        "DenoKvStorage: the first argument must be an open Deno KV database: " +
          "await Deno.openKv(), or openKv() from npm:@deno/kv.",
      );
    }
    checkOptionNames("DenoKvStorage", options, ["prefix", "ttl"]);
    const { prefix = ["sessions"] } = options;
    const ttl = checkTtl("DenoKvStorage", options.ttl);
    if (!Array.isArray(prefix) || !prefix.every(isKeyPart)) {
      throw new TypeError(
        `DenoKvStorage: prefix must be an array of KV key parts (strings, numbers, bigints, ` +
          `booleans or Uint8Arrays), got ${String(prefix)}. For example: { prefix: ["sessions"] }.`,
      );
    }
    this.prefix = [...prefix];
    this.ttl = ttl;
    const layout = new Layout(this.prefix);
    const longest = keyBytes(layout.longest(""));
    if (KV_LIMITS.maxKeyBytes - longest < 16) {
      throw new RangeError(
        `DenoKvStorage: the prefix takes ${keyBytes(this.prefix)} bytes, which leaves no room ` +
          `for session keys within Deno KV's ${KV_LIMITS.maxKeyBytes}-byte key limit. ` +
          `Use a shorter prefix.`,
      );
    }
    this.#fixed = longest - keyPartBytes("");
    this.keys = {
      wellFormed: true,
      maxBytes: KV_LIMITS.maxKeyBytes - longest,
      maxBytesReason: `a longer one is too long for Deno KV, which limits a key to ` +
        `${KV_LIMITS.maxKeyBytes} bytes including the prefix and the storage's own key parts`,
    };
    this.#ctx = { kv, layout, memory: new HeadMemory(), ttl: this.ttl };
  }

  /**
   * KV counts a NUL in a key as two bytes, which the layer's UTF-8 limit
   * does not: such keys are measured here.
   */
  #fits(key: string): void {
    if (!key.includes("\0") || this.#fixed + keyPartBytes(key) <= KV_LIMITS.maxKeyBytes) return;
    const shown = key.length > 40 ? `${key.slice(0, 40)}…` : key;
    throw new SessionError(
      `DenoKvStorage: the session key "${shown}" is too long for Deno KV, which limits a key ` +
        `to ${KV_LIMITS.maxKeyBytes} bytes (a NUL character takes two). Use shorter keys, for ` +
        `example a hash of a long key in getSessionKey. Nothing was written.`,
      key,
    );
  }

  /**
   * The session of `key` with its version; renews or clears its expiry when
   * `renew`. Reads the head again when a writer replaced its chunks meanwhile.
   */
  async #load(key: string, renew: boolean): Promise<StoredRecord<string> | undefined> {
    const { kv, layout, memory } = this.#ctx;
    const headKey = layout.head(key);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const cur = await kv.get(headKey);
      if (cur.value === null) {
        memory.remember(key, ABSENT);
        return undefined;
      }
      const head = parseHead(cur.value, key);
      const seen = seenOf(cur);
      if (isExpired(head, Date.now())) {
        await removeHead(this.#ctx, key, seen);
        return undefined;
      }
      const bytes = "data" in head ? head.data : await readGeneration(kv, layout, key, head);
      if (bytes === undefined) continue;
      memory.remember(key, seen);
      if (renew) await keepExpiry(this.#ctx, key, seen, head, bytes);
      return { payload: text.decode(bytes), version: head.ver };
    }
    throw new SessionError(
      `DenoKvStorage: could not read the session "${key}": its chunks were missing ${ATTEMPTS} ` +
        `times in a row. Either other writers kept replacing it, or its chunks were removed ` +
        `behind the storage's back; in that case delete the session with storage.delete(key).`,
      key,
    );
  }

  /**
   * The session of `key` and its version, renewing its expiry with a TTL
   * and clearing it without one (the version stays).
   *
   * @param key The session key.
   * @returns The record, or `undefined`.
   */
  read(key: string): Promise<StoredRecord<string> | undefined> {
    this.#fits(key);
    return this.#load(key, true);
  }

  /**
   * Stores the JSON text `payload` under `key` (if the version is `expected`).
   *
   * @param key The session key.
   * @param payload The JSON text.
   * @param expected The version required, `null` for none stored, `undefined` for any.
   * @returns The new version, or `null` when the version differed.
   */
  write(key: string, payload: string, expected: string | null | undefined): Promise<string | null> {
    this.#fits(key);
    return storeSession(this.#ctx, key, payload, expected);
  }

  /**
   * Deletes the session of `key` with its chunks (if the version is `expected`).
   *
   * @param key The session key.
   * @param expected The version required, `null` for none stored, `undefined` for any.
   * @returns `false` when the version differed.
   */
  delete(key: string, expected: string | null | undefined): Promise<boolean> {
    this.#fits(key);
    return deleteSession(this.#ctx, key, expected);
  }

  /**
   * Whether an unexpired session is stored under `key`; one `get`.
   *
   * @param key The session key.
   * @returns Whether there is one.
   */
  async has(key: string): Promise<boolean> {
    this.#fits(key);
    const cur = await this.#ctx.kv.get(this.#ctx.layout.head(key));
    return cur.value !== null && !isExpired(parseHead(cur.value, key), Date.now());
  }

  /**
   * One page of the unexpired sessions in KV key order, from after the key
   * `cursor`; renews nothing.
   *
   * @param cursor The last key of the page before, or `undefined`.
   * @param limit About how many keys.
   * @param values Whether to fetch the sessions too.
   * @returns The page.
   */
  async scan(
    cursor: string | undefined,
    limit: number,
    values: boolean,
  ): Promise<ScanPage<string>> {
    const { kv, layout } = this.#ctx;
    const prefix = layout.heads();
    const size = values ? Math.min(limit, VALUE_PAGE) : limit;
    const selector = cursor === undefined ? { prefix } : { prefix, start: [...prefix, cursor] };
    const page: ScanPage<string> & { payloads: (string | undefined)[] } = {
      keys: [],
      payloads: [],
      cursor: undefined,
    };
    let seen = 0;
    let last: string | undefined;
    // Only heads count: one more than a page tells whether another follows.
    // Entries nested under a head key (another storage whose prefix ends
    // inside this namespace, another program's) are skipped without
    // counting, so a page never ends among them: the cursor is always a head
    // key, and the next page (`start` is inclusive) skips that head and
    // everything under it. Counting them let a page full of entries under
    // one key hand that key out again and again: a listing that never ended.
    const list = kv.list(selector, { batchSize: Math.min(size + 2, 500) });
    for await (const entry of list) {
      const key = entry.key[prefix.length];
      if (key === cursor && cursor !== undefined) continue;
      const head = entry.key.length === prefix.length + 1;
      if (head && ++seen > size) {
        page.cursor = last;
        break;
      }
      if (!head) continue; // nested under a head key: not a session of this storage
      if (typeof key !== "string") {
        const kind = key instanceof Uint8Array ? "a Uint8Array" : `a ${typeof key}`;
        throw new SessionError(
          `DenoKvStorage: a KV key under this storage's prefix holds ${kind} where sessionkit ` +
            `keeps a session key string, so it was not written by sessionkit. Delete it, or ` +
            `give this storage a prefix of its own.`,
        );
      }
      last = key;
      const record = parseHead(entry.value, key);
      if (isExpired(record, Date.now())) continue;
      page.keys.push(key);
      if (!values) continue;
      const bytes = "data" in record ? record.data : await readGeneration(kv, layout, key, record);
      // Replaced while we listed: read the current version instead.
      page.payloads.push(
        bytes !== undefined ? text.decode(bytes) : (await this.#load(key, false))?.payload,
      );
    }
    return page;
  }

  /**
   * Takes the lease of `key` for `owner` for `ttl` ms.
   *
   * @param key The session key.
   * @param owner Who asks.
   * @param ttl The lease time in ms.
   * @returns Whether `owner` holds it now.
   */
  acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    this.#fits(key);
    return putLease(this.#ctx.kv, this.#ctx.layout.lease(key), owner, ttl, false);
  }

  /**
   * Extends `owner`'s unexpired lease of `key`.
   *
   * @param key The session key.
   * @param owner The holder.
   * @param ttl The lease time in ms from now.
   * @returns `false` if `owner` does not hold it (any more).
   */
  renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    this.#fits(key);
    return putLease(this.#ctx.kv, this.#ctx.layout.lease(key), owner, ttl, true);
  }

  /**
   * Gives up `owner`'s lease of `key`.
   *
   * @param key The session key.
   * @param owner The holder.
   */
  releaseLease(key: string, owner: string): Promise<void> {
    this.#fits(key);
    return dropLease(this.#ctx.kv, this.#ctx.layout.lease(key), owner);
  }

  /**
   * While `owner` holds an unexpired lease of `key`, stores `payload` (or,
   * for `undefined`, deletes) if the version is `expected`, and gives the
   * lease up: the commit that changes the session checks the lease record's
   * versionstamp and deletes it, so a save that arrives after another
   * process took the lease writes nothing.
   *
   * @param key The session key.
   * @param payload The JSON text, or `undefined` to delete.
   * @param expected The version required, `null` for none stored, `undefined` for any.
   * @param owner The holder of the lease.
   * @returns Whether it was saved (with the new version), else why not.
   */
  saveAndReleaseLease(
    key: string,
    payload: string | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return this.#lockedSave(key, payload, expected, owner, true);
  }

  /**
   * As {@link KvDriver.saveAndReleaseLease}, keeping the lease: the
   * commit checks the lease record's versionstamp and leaves the record.
   *
   * @param key The session key.
   * @param payload The JSON text, or `undefined` to delete.
   * @param expected The version required, `null` for none stored, `undefined` for any.
   * @param owner The holder of the lease.
   * @returns Whether it was saved (with the new version), else why not.
   */
  saveKeepingLease(
    key: string,
    payload: string | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return this.#lockedSave(key, payload, expected, owner, false);
  }

  async #lockedSave(
    key: string,
    payload: string | undefined,
    expected: string | null | undefined,
    owner: string,
    release: boolean,
  ): Promise<LockedSave> {
    this.#fits(key);
    const ctx = this.#ctx;
    // The commit checks the lease record's versionstamp, which the holder's
    // own renewal changes too (it runs beside a save that keeps the lease):
    // the guard then moves on to the new one (leases.ts, assertGuard).
    const guard = await leaseGuard(ctx.kv, ctx.layout.lease(key), owner, release);
    if (guard === undefined) return { saved: false, reason: "lease" };
    try {
      if (payload === undefined) {
        return await deleteSession(ctx, key, expected, guard)
          ? { saved: true, version: null }
          : { saved: false, reason: "conflict" };
      }
      const version = await storeSession(ctx, key, payload, expected, guard);
      return version === null ? { saved: false, reason: "conflict" } : { saved: true, version };
    } catch (err) {
      if (err instanceof LeaseLost) return { saved: false, reason: "lease" };
      throw err;
    }
  }
}

function isKeyPart(part: unknown): part is KvKeyPartLike {
  return typeof part === "string" || typeof part === "number" || typeof part === "bigint" ||
    typeof part === "boolean" || part instanceof Uint8Array;
}
