/**
 * `DenoKvStorage`: sessions in Deno KV, locally (`Deno.openKv()` is an
 * embedded SQLite database), on Deno Deploy, and on Node through the `Kv` of
 * `npm:@deno/kv`.
 *
 * - Sessions of any size: above KV's 64 KiB value limit a session is split
 *   into chunks, and readers see either the old or the new session, never a
 *   mix.
 * - TTL with sliding expiry: KV's native `expireIn` plus an expiry time
 *   checked on every read, since KV removes expired keys lazily.
 * - `has` and the `readAll*` methods stream through `kv.list`.
 * - Conflict detection (`readVersioned`, `writeIfVersion`, `deleteIfVersion`)
 *   and leases (`acquireLease`, `renewLease`, `releaseLease`) for bots that
 *   run in several processes.
 *
 * @example A lazy session kept in Deno KV for a week of inactivity
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { lazySession, type LazySessionFlavor } from "@sessionkit/grammy";
 * import { DenoKvStorage } from "@sessionkit/grammy/denokv";
 *
 * type MyContext = Context & LazySessionFlavor<{ count: number }>;
 * const bot = new Bot<MyContext>("token");
 * const kv = await Deno.openKv();
 * bot.use(lazySession({
 *   initial: () => ({ count: 0 }),
 *   storage: new DenoKvStorage(kv, { ttl: 7 * 24 * 60 * 60 * 1000 }),
 * }));
 * ```
 *
 * @module
 */

import type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";
import { SessionError } from "../src/errors.ts";
import { deserializeSession, serializeSession } from "../src/serialization.ts";
import type { StorageAdapter } from "../src/storage.ts";
import { AtomicPlan, commitInBatches, type Mutation } from "./denokv/batch.ts";
import { deleteGeneration, readGeneration, writeGeneration } from "./denokv/chunks.ts";
import { ABSENT, HeadMemory, matches, type SeenHead, seenOf } from "./denokv/heads.ts";
import type { KvKeyPartLike, KvLike } from "./denokv/kv.ts";
import { dropLease, putLease } from "./denokv/leases.ts";
import { keyBytes, keyPartBytes, KV_LIMITS } from "./denokv/limits.ts";
import {
  type ChunkedHead,
  encodeInline,
  type Head,
  INLINE_HEADER_BYTES,
  type InlineHead,
  isExpired,
  Layout,
  newGeneration,
  parseHead,
  parseMarker,
  reexpire,
  storedHead,
} from "./denokv/records.ts";

export type {
  KvAtomicLike,
  KvCommitLike,
  KvEntryLike,
  KvKeyLike,
  KvKeyPartLike,
  KvLike,
} from "./denokv/kv.ts";
export { KV_LIMITS } from "./denokv/limits.ts";
// Re-exported so this entry point documents itself on its own.
export type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";
export type { MaybePromise, StorageAdapter } from "../src/storage.ts";

/**
 * Options of {@link DenoKvStorage}.
 *
 * @example
 * ```ts
 * import type { DenoKvStorageOptions } from "@sessionkit/grammy/denokv";
 *
 * const options: DenoKvStorageOptions = { prefix: ["bot", "sessions"], ttl: 86_400_000 };
 * ```
 */
export interface DenoKvStorageOptions {
  /**
   * The KV key parts under which all records of this storage live. Default
   * `["sessions"]`. Give every storage a prefix of its own, and do not nest
   * one storage's prefix inside another's.
   */
  prefix?: readonly KvKeyPartLike[];
  /**
   * Time to live in milliseconds. A session not read or written for this
   * long is gone. Reads renew it once less than half of it is left.
   */
  ttl?: number;
}

/** Sessions up to this many bytes of JSON live in their head record. */
const INLINE_BYTES = KV_LIMITS.maxValueBytes - 1024;
/** Attempts at an operation that races other writers of the same key. */
const ATTEMPTS = 10;
/** A generation without a head pointing to it is removed after this long. */
const ORPHAN_AGE_MS = 10 * 60 * 1000;

const text = new TextDecoder();

/** The JSON text of a session (`null`: none stored) and its version. */
interface Loaded {
  text: string | null;
  version: string | null;
}

/**
 * Stores sessions in Deno KV. Pass `Deno.openKv()`'s database, or the `Kv`
 * of `npm:@deno/kv` on Node; the storage never closes it.
 *
 * Each session is the UTF-8 bytes of the JSON text of the serialization
 * contract. Up to 63 KiB it lives in one KV entry; larger sessions are split
 * into 64 KiB chunks under a fresh generation id, and the session's head
 * record is switched to the new generation atomically (in the same atomic
 * operation when everything fits into one, otherwise after the chunks are
 * written), so a reader sees the old or the new session, never a mix. The
 * chunks of a replaced or deleted session are removed.
 *
 * Keys are limited to 2 KiB by KV: a session key that would not fit is
 * refused with a `SessionError` before anything is written.
 *
 * The storage remembers the head versionstamp it last read or wrote for a
 * few thousand recently used keys, so a write after a read costs one atomic
 * commit (checked against that versionstamp) and no second read; when
 * another writer changed the session meanwhile, the check fails and the
 * write reads the head again before it commits.
 *
 * @example
 * ```ts
 * import { DenoKvStorage } from "@sessionkit/grammy/denokv";
 *
 * const kv = await Deno.openKv(":memory:");
 * const storage = new DenoKvStorage<{ count: number }>(kv, { ttl: 60_000 });
 * await storage.write("42", { count: 1 });
 * console.log(await storage.read("42")); // { count: 1 }
 * kv.close();
 * ```
 */
export class DenoKvStorage<T> implements StorageAdapter<T>, ConditionalStorage<T>, LeaseStorage {
  /** The KV key parts under which this storage keeps its records. */
  readonly prefix: readonly KvKeyPartLike[];
  /** The time to live in milliseconds, or `undefined` for none. */
  readonly ttl: number | undefined;
  readonly #kv: KvLike;
  readonly #layout: Layout;
  readonly #memory = new HeadMemory();
  /** The bytes of the longest KV key of a session, less those of the session key. */
  readonly #fixedKeyBytes: number;

  /**
   * Creates a storage over a KV database.
   *
   * @param kv A `Deno.Kv`, or the `Kv` of `npm:@deno/kv`.
   * @param options The key prefix and the time to live.
   */
  constructor(kv: KvLike, options: DenoKvStorageOptions = {}) {
    const { prefix = ["sessions"], ttl } = options;
    if (ttl !== undefined && !(ttl > 0)) {
      throw new RangeError(
        `DenoKvStorage: ttl must be a positive number of milliseconds, got ${ttl}. ` +
          `Leave it out for sessions that never expire.`,
      );
    }
    if (!Array.isArray(prefix) || !prefix.every(isKeyPart)) {
      throw new TypeError(
        `DenoKvStorage: prefix must be an array of KV key parts (strings, numbers, bigints, ` +
          `booleans or Uint8Arrays), got ${String(prefix)}. For example: { prefix: ["sessions"] }.`,
      );
    }
    this.#kv = kv;
    this.prefix = [...prefix];
    this.ttl = ttl === Infinity ? undefined : ttl;
    this.#layout = new Layout(this.prefix);
    this.#fixedKeyBytes = keyBytes(this.#layout.longest("")) - keyPartBytes("");
    const room = KV_LIMITS.maxKeyBytes - keyBytes(this.#layout.longest(""));
    if (room < 16) {
      throw new RangeError(
        `DenoKvStorage: the prefix takes ${keyBytes(this.prefix)} bytes, which leaves no room ` +
          `for session keys within Deno KV's ${KV_LIMITS.maxKeyBytes}-byte key limit. ` +
          `Use a shorter prefix.`,
      );
    }
  }

  /**
   * Returns the session stored under `key`, or `undefined` if there is none
   * or it expired. Renews the TTL when less than half of it is left.
   *
   * @param key The session key.
   * @returns The session.
   */
  async read(key: string): Promise<T | undefined> {
    this.#checkKey(key);
    const { text } = await this.#load(key, true);
    return text === null ? undefined : deserializeSession<T>(text);
  }

  /**
   * Stores `value` under `key`, replacing what was there, all or nothing.
   * Throws a `SessionValueError` for values JSON cannot hold and a
   * `SessionError` for keys too long for KV; nothing is written then.
   *
   * @param key The session key.
   * @param value The session data.
   */
  async write(key: string, value: T): Promise<void> {
    this.#checkKey(key);
    await this.#store(key, serializeSession(value, key), undefined);
  }

  /**
   * Removes the session stored under `key` with all its chunks.
   *
   * @param key The session key.
   */
  async delete(key: string): Promise<void> {
    this.#checkKey(key);
    await this.#delete(key);
  }

  /**
   * Tells whether an unexpired session is stored under `key`.
   *
   * @param key The session key.
   * @returns Whether there is one.
   */
  async has(key: string): Promise<boolean> {
    this.#checkKey(key);
    const cur = await this.#kv.get(this.#layout.head(key));
    return cur.value !== null && !isExpired(parseHead(cur.value, key), Date.now());
  }

  /**
   * Lists the keys of all unexpired sessions, streaming through `kv.list`.
   *
   * @returns The keys, in KV key order.
   */
  async *readAllKeys(): AsyncGenerator<string, void, undefined> {
    for await (const [key] of this.#heads()) yield key;
  }

  /**
   * Lists all unexpired sessions, streaming through `kv.list`.
   *
   * @returns The sessions.
   */
  async *readAllValues(): AsyncGenerator<T, void, undefined> {
    for await (const [, value] of this.readAllEntries()) yield value;
  }

  /**
   * Lists all unexpired sessions with their keys, streaming through `kv.list`.
   *
   * @returns The keys and sessions.
   */
  async *readAllEntries(): AsyncGenerator<[key: string, value: T], void, undefined> {
    for await (const [key, head] of this.#heads()) {
      const bytes = "data" in head
        ? head.data
        : await readGeneration(this.#kv, this.#layout, key, head);
      if (bytes !== undefined) {
        yield [key, deserializeSession<T>(text.decode(bytes))];
        continue;
      }
      // Replaced while we listed: read the current version instead.
      const now = await this.#load(key, false);
      if (now.text !== null) yield [key, deserializeSession<T>(now.text)];
    }
  }

  /**
   * Reads the session of `key` with its version (the KV versionstamp of its
   * head record). Renews the TTL like {@link DenoKvStorage.read}.
   *
   * @param key The session key.
   * @returns The session and its version.
   */
  async readVersioned(key: string): Promise<VersionedValue<T>> {
    this.#checkKey(key);
    const { text, version } = await this.#load(key, true);
    return { value: text === null ? undefined : deserializeSession<T>(text), version };
  }

  /**
   * Stores `value` under `key` if the stored version is still `expected`
   * (`null`: only if no unexpired session is stored).
   *
   * @param key The session key.
   * @param value The session data.
   * @param expected The version read before.
   * @returns The new version, or `null` if the version differed.
   */
  async writeIfVersion(key: string, value: T, expected: string | null): Promise<string | null> {
    this.#checkKey(key);
    return await this.#store(key, serializeSession(value, key), expected);
  }

  /**
   * Deletes the session of `key` if its version is still `expected`.
   *
   * @param key The session key.
   * @param expected The version read before (`null`: nothing stored).
   * @returns `false` if the version differed and nothing was deleted.
   */
  async deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
    this.#checkKey(key);
    return await this.#deleteIfVersion(key, expected);
  }

  /**
   * Takes the lease of `key` for `owner` for `ttl` ms. Succeeds when nobody
   * holds it, when the lease expired, or when `owner` holds it already
   * (which extends it).
   *
   * @param key The session key.
   * @param owner A unique id of the caller.
   * @param ttl The lease time in ms.
   * @returns Whether `owner` holds the lease now.
   */
  async acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    this.#checkKey(key);
    checkLeaseTtl(ttl);
    return await putLease(this.#kv, this.#layout.lease(key), owner, ttl, false);
  }

  /**
   * Extends `owner`'s unexpired lease of `key` to `ttl` ms from now.
   *
   * @param key The session key.
   * @param owner The holder.
   * @param ttl The lease time in ms.
   * @returns `false` if `owner` does not hold the lease (any more).
   */
  async renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    this.#checkKey(key);
    checkLeaseTtl(ttl);
    return await putLease(this.#kv, this.#layout.lease(key), owner, ttl, true);
  }

  /**
   * Gives up the lease of `key` if `owner` still holds it.
   *
   * @param key The session key.
   * @param owner The holder.
   */
  async releaseLease(key: string, owner: string): Promise<void> {
    this.#checkKey(key);
    await dropLease(this.#kv, this.#layout.lease(key), owner);
  }

  #checkKey(key: string): void {
    if (typeof key !== "string" || !key.isWellFormed()) {
      throw new SessionError(
        `DenoKvStorage: the session key ${JSON.stringify(key)} is not well-formed text (it has a ` +
          `lone surrogate), which Deno KV would store as U+FFFD, mixing it up with other keys. ` +
          `Build keys from well-formed text. Nothing was written.`,
        typeof key === "string" ? key : undefined,
      );
    }
    const bytes = this.#fixedKeyBytes + keyPartBytes(key);
    if (bytes <= KV_LIMITS.maxKeyBytes) return;
    const shown = key.length > 40 ? `${key.slice(0, 40)}…` : key;
    throw new SessionError(
      `DenoKvStorage: the session key "${shown}" (${key.length} characters) is too long for ` +
        `Deno KV, which limits a key to ${KV_LIMITS.maxKeyBytes} bytes (2 KiB). With the prefix ` +
        `and the storage's own key parts it would take ${bytes} bytes. Use shorter session keys ` +
        `(for example, hash long keys in getSessionKey) or a shorter prefix. Nothing was written.`,
      key,
    );
  }

  #expireIn(exp: number | null): number | undefined {
    return exp === null ? undefined : Math.max(1, exp - Date.now());
  }

  #contended(key: string, what: string): SessionError {
    return new SessionError(
      `DenoKvStorage: could not ${what} the session "${key}": it was changed by other writers ` +
        `${ATTEMPTS} times in a row. Run updates of one chat one at a time (leases help), ` +
        `or retry.`,
      key,
    );
  }

  /**
   * Reads the JSON text of a session with its version, retrying when a
   * writer replaced its chunks meanwhile, and remembers the head it read.
   */
  async #load(key: string, renew: boolean): Promise<Loaded> {
    const headKey = this.#layout.head(key);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const cur = await this.#kv.get(headKey);
      if (cur.value === null) {
        this.#memory.remember(key, ABSENT);
        return { text: null, version: null };
      }
      const head = parseHead(cur.value, key);
      const seen = seenOf(cur);
      if (isExpired(head, Date.now())) {
        await this.#remove(key, seen);
        return { text: null, version: null };
      }
      const bytes = "data" in head
        ? head.data
        : await readGeneration(this.#kv, this.#layout, key, head);
      if (bytes === undefined) continue;
      this.#memory.remember(key, seen);
      let version = cur.versionstamp as string;
      if (renew) version = await this.#renew(key, version, head, bytes) ?? version;
      return { text: text.decode(bytes), version };
    }
    throw new SessionError(
      `DenoKvStorage: could not read the session "${key}": its chunks were missing ${ATTEMPTS} ` +
        `times in a row. Either other writers kept replacing it, or its chunks were removed ` +
        `behind the storage's back; in that case delete the session with storage.delete(key).`,
      key,
    );
  }

  /**
   * Renews the expiry once less than half the TTL is left. Chunks are
   * rewritten first (same bytes, so readers are unaffected), then the head.
   */
  async #renew(
    key: string,
    version: string,
    head: Head,
    bytes: Uint8Array,
  ): Promise<string | undefined> {
    if (this.ttl === undefined || head.exp === null) return undefined;
    const now = Date.now();
    if (head.exp - now >= this.ttl / 2) return undefined;
    const exp = now + this.ttl;
    const headKey = this.#layout.head(key);
    const plan = new AtomicPlan().check(headKey, version);
    if ("data" in head) {
      const record = reexpire(head.record, exp);
      const renewed: InlineHead = { exp, data: record.subarray(INLINE_HEADER_BYTES), record };
      plan.add({ type: "set", key: headKey, value: record, expireIn: this.ttl });
      return this.#committed(key, renewed, await plan.commit(this.#kv)) ?? undefined;
    }
    const renewed = { ...head, exp };
    const chunks = writeGeneration(this.#layout, key, head.gen, bytes, this.ttl);
    const set: Mutation = { type: "set", key: headKey, value: renewed, expireIn: this.ttl };
    for (const m of chunks) plan.add(m);
    plan.add(set);
    if (plan.fits()) return this.#committed(key, renewed, await plan.commit(this.#kv)) ?? undefined;
    await commitInBatches(this.#kv, chunks);
    const check = new AtomicPlan().check(headKey, version).add(set);
    const vs = this.#committed(key, renewed, await check.commit(this.#kv));
    if (vs !== null) return vs;
    // Someone changed the session meanwhile; if it left our generation,
    // the chunks we just rewrote must not stay behind.
    const now2 = seenOf(await this.#kv.get(headKey));
    if (now2.chunks?.gen !== head.gen) {
      await commitInBatches(this.#kv, deleteGeneration(this.#layout, key, head.gen, head.n));
    }
    return undefined;
  }

  /**
   * Writes a session. With `expected` (not `undefined`), only if the stored
   * version matches; resolves to the new versionstamp, or `null` on conflict.
   */
  async #store(
    key: string,
    json: string,
    expected: string | null | undefined,
  ): Promise<string | null> {
    const exp = this.ttl === undefined ? null : Date.now() + this.ttl;
    // The text is encoded once, behind the inline header; a session too
    // large for its head is chunked from the same buffer.
    const record = encodeInline(json, exp);
    const bytes = record.subarray(INLINE_HEADER_BYTES);
    if (bytes.length <= INLINE_BYTES) {
      return await this.#switch(key, { exp, data: bytes, record }, expected, []);
    }
    const gen = newGeneration();
    const chunks = writeGeneration(this.#layout, key, gen, bytes, this.#expireIn(exp));
    const head: ChunkedHead = { v: 1, exp, gen, n: chunks.length - 1, bytes: bytes.length };
    const whole = new AtomicPlan().check(this.#layout.head(key), null);
    for (const m of chunks) whole.add(m);
    whole.add({ type: "set", key: this.#layout.head(key), value: head });
    if (whole.fits()) return await this.#switch(key, head, expected, chunks);

    // Too large for one atomic operation: write the generation first, then
    // switch the head to it atomically.
    if (expected !== undefined) {
      const hint = this.#memory.recall(key);
      if (!(hint !== undefined && matches(hint, expected))) {
        if (!matches(seenOf(await this.#kv.get(this.#layout.head(key))), expected)) return null;
      }
    }
    let switched: string | null = null;
    try {
      await commitInBatches(this.#kv, chunks);
      switched = await this.#switch(key, head, expected, []);
      return switched;
    } finally {
      if (switched === null) {
        await commitInBatches(this.#kv, deleteGeneration(this.#layout, key, gen, head.n));
      }
    }
  }

  /**
   * Points the head of `key` at `head` (with `extra` mutations in the same
   * atomic operation), then removes the generation it pointed at before.
   *
   * The first attempt trusts the remembered head, if any: its commit is
   * checked against the remembered versionstamp. When that check fails (or
   * the remembered head does not match `expected`), the head is read from
   * KV and the write decided on what is stored, as if nothing was remembered.
   */
  async #switch(
    key: string,
    head: Head,
    expected: string | null | undefined,
    extra: Mutation[],
  ): Promise<string | null> {
    const headKey = this.#layout.head(key);
    let hint = this.#memory.recall(key);
    for (let attempt = 0; attempt < ATTEMPTS;) {
      const remembered = hint !== undefined;
      const cur = hint ?? seenOf(await this.#kv.get(headKey));
      hint = undefined;
      if (!remembered) attempt++;
      if (expected !== undefined && !matches(cur, expected)) {
        if (remembered) continue; // maybe out of date: ask KV
        this.#memory.remember(key, cur);
        return null;
      }
      const plan = new AtomicPlan().check(headKey, cur.versionstamp);
      for (const m of extra) plan.add(m);
      plan.add({
        type: "set",
        key: headKey,
        value: storedHead(head),
        expireIn: this.#expireIn(head.exp),
      });
      const cleanup = this.#cleanup(key, cur, plan);
      const vs = this.#committed(key, head, await plan.commit(this.#kv));
      if (vs !== null) {
        await commitInBatches(this.#kv, cleanup);
        if (cleanup.length > 0 || "gen" in head) {
          await this.#sweepOrphans(key, "gen" in head ? head.gen : undefined);
        }
        return vs;
      }
      // The head is not `cur` any more. With `expected`, that is a conflict
      // unless `cur` was a remembered "nothing stored", which KV must confirm
      // (an expired head still counts as nothing stored).
      if (expected !== undefined && !(remembered && expected === null)) return null;
    }
    throw this.#contended(key, "write");
  }

  /**
   * Remembers the head of `key` that a commit of `head` resulted in, or
   * forgets it when the commit's check failed (`vs` is `null`).
   */
  #committed(key: string, head: Head, vs: string | null): string | null {
    if (vs === null) {
      this.#memory.forget(key);
    } else {
      const chunks = "gen" in head ? { gen: head.gen, n: head.n } : undefined;
      this.#memory.remember(key, { versionstamp: vs, exp: head.exp, chunks });
    }
    return vs;
  }

  /** Deletes the session of `key` with all its chunks, whatever its version. */
  async #delete(key: string): Promise<void> {
    // A remembered head is tried first; "nothing stored" is never trusted.
    let hint = this.#memory.recall(key);
    if (hint?.versionstamp === null) hint = undefined;
    for (let attempt = 0; attempt < ATTEMPTS;) {
      const cur = hint ?? seenOf(await this.#kv.get(this.#layout.head(key)));
      if (hint === undefined) attempt++;
      hint = undefined;
      if (cur.versionstamp === null || await this.#remove(key, cur)) {
        await this.#sweepOrphans(key, undefined);
        return;
      }
    }
    throw this.#contended(key, "delete");
  }

  /** Deletes the session of `key` if its version is `expected`. */
  async #deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
    if (expected !== null) {
      // The check of the commit is the comparison with `expected`.
      const hint = this.#memory.recall(key);
      if (hint?.versionstamp === expected) return await this.#remove(key, hint);
    }
    const cur = seenOf(await this.#kv.get(this.#layout.head(key)));
    const live = cur.versionstamp !== null && !isExpired(cur, Date.now());
    if (expected === null) {
      if (live) return false;
      if (cur.versionstamp !== null) await this.#remove(key, cur);
      return true;
    }
    if (cur.versionstamp !== expected) return false;
    return await this.#remove(key, cur);
  }

  /**
   * Deletes the head `cur` of `key` if it is still current, with its
   * generation. Resolves to `false` if the head changed meanwhile.
   */
  async #remove(key: string, cur: SeenHead): Promise<boolean> {
    const plan = new AtomicPlan().check(this.#layout.head(key), cur.versionstamp)
      .add({ type: "delete", key: this.#layout.head(key) });
    const cleanup = this.#cleanup(key, cur, plan);
    if (await plan.commit(this.#kv) === null) {
      this.#memory.forget(key);
      return false;
    }
    this.#memory.remember(key, ABSENT);
    await commitInBatches(this.#kv, cleanup);
    return true;
  }

  /**
   * Adds the removal of the generation `cur` points at to `plan` when it
   * fits; returns the mutations that did not fit, to run after the commit.
   */
  #cleanup(key: string, cur: SeenHead, plan: AtomicPlan): Mutation[] {
    const old = cur.chunks;
    if (old === undefined) return [];
    const deletes = deleteGeneration(this.#layout, key, old.gen, old.n);
    const bytes = deletes.reduce((n, m) => n + keyBytes(m.key), 0);
    if (!plan.fits({ count: deletes.length, bytes, keyBytes: bytes })) return deletes;
    for (const m of deletes) plan.add(m);
    return [];
  }

  /**
   * Removes generations of `key` that no head points to and that are older
   * than any write in progress can be (left behind by a crashed writer).
   */
  async #sweepOrphans(key: string, keep: string | undefined): Promise<void> {
    const now = Date.now();
    const doomed: Mutation[] = [];
    for await (const entry of this.#kv.list({ prefix: this.#layout.markers(key) })) {
      const gen = entry.key[entry.key.length - 1];
      const marker = parseMarker(entry.value);
      if (typeof gen !== "string" || gen === keep || marker === undefined) continue;
      if (now - marker.at < ORPHAN_AGE_MS) continue;
      doomed.push(...deleteGeneration(this.#layout, key, gen, marker.n));
    }
    await commitInBatches(this.#kv, doomed);
  }

  /** Streams the unexpired heads under the prefix. */
  async *#heads(): AsyncGenerator<[string, Head], void, undefined> {
    const prefix = this.#layout.heads();
    for await (const entry of this.#kv.list({ prefix }, { batchSize: 16 })) {
      if (entry.key.length !== prefix.length + 1) continue;
      const key = entry.key[prefix.length];
      if (typeof key !== "string") continue;
      const head = parseHead(entry.value, key);
      if (!isExpired(head, Date.now())) yield [key, head];
    }
  }
}

function isKeyPart(part: unknown): part is KvKeyPartLike {
  return typeof part === "string" || typeof part === "number" || typeof part === "bigint" ||
    typeof part === "boolean" || part instanceof Uint8Array;
}

function checkLeaseTtl(ttl: number): void {
  if (ttl > 0 && Number.isFinite(ttl)) return;
  throw new RangeError(
    `DenoKvStorage: a lease ttl must be a positive, finite number of milliseconds, got ${ttl}.`,
  );
}
