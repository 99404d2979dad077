/**
 * `RedisStorage`: sessions in Redis, for bots that run in more than one
 * process or must survive a restart.
 *
 * Each session is one Redis string at `prefix + key` holding exactly the JSON
 * text of the serialization contract. A TTL is set with the write itself
 * (`SET ... PX`) and renewed by reads (`GETEX ... PX`). Listings walk the
 * keyspace with `SCAN MATCH` (never `KEYS`) and fetch values with `MGET` in
 * batches. A read is always that one `GET`/`GETEX`, versioned or not.
 * Conditional writes (compare-and-set) and per-key leases run as Lua scripts
 * in one round trip. Needs Redis 6.2 or newer.
 *
 * @example Let the storage open (and later close) its own connection
 * ```ts
 * import { Bot, type Context } from "npm:grammy@^1.46";
 * import { session, type SessionFlavor } from "@sessionkit/grammy";
 * import { RedisStorage } from "@sessionkit/grammy/redis";
 *
 * type MyContext = Context & SessionFlavor<{ count: number }>;
 * const storage = await RedisStorage.connect<{ count: number }>(
 *   Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379",
 *   { ttl: 30 * 24 * 60 * 60 * 1000 },
 * );
 * const bot = new Bot<MyContext>(Deno.env.get("BOT_TOKEN") ?? "");
 * bot.use(session({ initial: () => ({ count: 0 }), storage }));
 * bot.command("count", (ctx) => ctx.reply(`Count: ${++ctx.session.count}`));
 * ```
 *
 * @example Use a client you already have (the storage never opens or closes it)
 * ```ts
 * import { createClient } from "npm:redis@^5";
 * import { RedisStorage } from "@sessionkit/grammy/redis";
 *
 * const client = createClient({ url: "redis://127.0.0.1:6379" });
 * client.on("error", (err) => console.error("Redis:", err));
 * await client.connect();
 * const storage = new RedisStorage<{ count: number }>(client, { prefix: "mybot:" });
 * ```
 *
 * @module
 */

import { createClient } from "npm:redis@^5";
import type { StorageAdapter } from "../src/storage.ts";
import type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";
import { deserializeSession, serializeSession } from "../src/serialization.ts";
import { SessionError } from "../src/errors.ts";
import { type RedisClientLike, replyText } from "./redis/client.ts";
import { leaseTtl, type RedisStorageOptions, resolveOptions } from "./redis/options.ts";
import { scanEntries, scanPages } from "./redis/scan.ts";
import * as scripts from "./redis/scripts.ts";

export type { RedisClientLike } from "./redis/client.ts";
export type { RedisStorageOptions } from "./redis/options.ts";
export type { MaybePromise, StorageAdapter } from "../src/storage.ts";
export type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";

/**
 * Options of {@link RedisStorage.connect}: the storage options plus an error
 * callback. For any other client option (TLS, timeouts, an offline queue
 * policy, ...), create the client yourself with `createClient` from
 * `npm:redis` and pass it to the constructor.
 *
 * @example
 * ```ts
 * import { type RedisConnectOptions, RedisStorage } from "@sessionkit/grammy/redis";
 *
 * const options: RedisConnectOptions = {
 *   prefix: "mybot:",
 *   ttl: 7 * 24 * 60 * 60 * 1000,
 *   onError: (err) => console.warn("Redis connection trouble:", err.message),
 * };
 * const storage = await RedisStorage.connect("redis://127.0.0.1:6379", options);
 * await storage.close();
 * ```
 */
export interface RedisConnectOptions extends RedisStorageOptions {
  /**
   * Called with every error the client reports once connected (a dropped
   * connection, a failed reconnect). The client reconnects by itself,
   * backing off up to 2 seconds between attempts. Default: log with
   * `console.error`. A server that cannot be reached at first makes
   * `connect` reject instead.
   */
  onError?: (error: Error) => void;
}

interface OwnedClient {
  close(): Promise<void>;
}

/**
 * Stores sessions in Redis. Implements `StorageAdapter`, so it works with
 * `session()`, `lazySession()` and multi sessions of sessionkit and grammY
 * alike, plus `ConditionalStorage` (compare-and-set) and `LeaseStorage`
 * (per-key leases) for running several bot processes.
 *
 * - Key layout: a session lives at `prefix + key` (default prefix
 *   `"session:"`); its lease, if any, at `leasePrefix + key` (default
 *   `"sessionkit-lease:" + prefix`), which the session listing never matches.
 * - The version of a session, for conditional writes, is its stored JSON
 *   text itself: a read yields it for free, a conditional write sends it
 *   along (the session's size once more) and a script compares it with what
 *   Redis holds. There is no second record per session and nothing is hashed.
 * - A dropped connection fails the commands it hits; nothing is half-written,
 *   since every write is a single command or script.
 *
 * @example
 * ```ts
 * import { RedisStorage } from "@sessionkit/grammy/redis";
 *
 * const storage = await RedisStorage.connect<{ count: number }>("redis://127.0.0.1:6379", {
 *   prefix: "counter:",
 *   ttl: 60 * 60 * 1000,
 * });
 * await storage.write("42", { count: 1 });
 * console.log(await storage.read("42")); // { count: 1 }
 * for await (const key of storage.readAllKeys()) console.log(key); // "42"
 * await storage.close();
 * ```
 */
export class RedisStorage<T> implements StorageAdapter<T>, ConditionalStorage<T>, LeaseStorage {
  /** The client this storage sends its commands through. */
  readonly client: RedisClientLike;
  /** What is prepended to session keys to form Redis keys. */
  readonly prefix: string;
  /** The time to live in milliseconds, or `undefined` for none. */
  readonly ttl: number | undefined;
  /** What is prepended to session keys to form the Redis keys of leases. */
  readonly leasePrefix: string;
  readonly #leaseProblem: string | undefined;
  readonly #px: string;
  #owned: OwnedClient | undefined;

  /**
   * Creates a storage over a client you opened. The storage never calls
   * `connect()` on it, and `close()` leaves it open: it stays yours.
   *
   * @example
   * ```ts
   * import { createClient } from "npm:redis@^5";
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const client = await createClient().on("error", console.error).connect();
   * const storage = new RedisStorage<{ count: number }>(client, { ttl: 86_400_000 });
   * ```
   *
   * @param client A connected client from `npm:redis` v5 or v4, or anything
   *   with the same `sendCommand`.
   * @param options The prefix, TTL and lease prefix.
   */
  constructor(client: RedisClientLike, options?: RedisStorageOptions) {
    const resolved = resolveOptions(options);
    if (typeof client?.sendCommand !== "function") {
      throw new TypeError(
        "RedisStorage: the first argument must be a Redis client with sendCommand, such as " +
          "createClient() from npm:redis. To let the storage open the connection itself, " +
          "use RedisStorage.connect(url).",
      );
    }
    this.client = client;
    this.prefix = resolved.prefix;
    this.ttl = resolved.ttl;
    this.leasePrefix = resolved.leasePrefix;
    this.#leaseProblem = resolved.leaseProblem;
    this.#px = this.ttl === undefined ? "" : String(this.ttl);
  }

  /**
   * Opens a connection with `createClient` from `npm:redis` v5 and returns a
   * storage that owns it: {@link RedisStorage.close} closes it. Invalid
   * options are refused before anything is opened.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect("redis://127.0.0.1:6379", { prefix: "bot:" });
   * await storage.close();
   * ```
   *
   * @param url A `redis://` or `rediss://` URL.
   * @param options Storage options and an error callback.
   * @returns A storage with an open connection.
   */
  static async connect<T>(
    url: string,
    options: RedisConnectOptions = {},
  ): Promise<RedisStorage<T>> {
    const { onError, ...storageOptions } = options;
    resolveOptions(storageOptions);
    let opened = false;
    const client = createClient({
      url,
      socket: {
        // Before the first connection: a few quick retries, then give up so
        // that connect() rejects instead of waiting forever. Afterwards:
        // reconnect for as long as it takes, backing off up to 2 s.
        reconnectStrategy: (retries: number, cause: Error) =>
          opened ? Math.min(50 * 2 ** retries, 2000) : retries >= 2 ? cause : 100 * (retries + 1),
      },
    });
    client.on("error", (err: Error) => {
      if (!opened) return; // reported by the rejection of connect()
      if (onError !== undefined) onError(err);
      else console.error("RedisStorage: Redis connection error (the client reconnects):", err);
    });
    try {
      await client.connect();
      opened = true;
    } catch (err) {
      if (client.isOpen) client.destroy();
      throw new SessionError(
        `RedisStorage: cannot connect to Redis at ${redactUrl(url)}: ${
          err instanceof Error ? err.message : String(err)
        }. Check that the server runs and that REDIS_URL is right.`,
        undefined,
        { cause: err },
      );
    }
    const storage = new RedisStorage<T>(client as RedisClientLike, storageOptions);
    storage.#owned = {
      async close() {
        // A graceful close waits for every pending reply; if one never comes
        // (node-redis can lose one when the server drops the connection in
        // the middle of a command), the connection is torn down after 2 s.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)));
        await Promise.race([client.close().catch(() => {}), gaveUp]);
        clearTimeout(timer);
        if (client.isOpen) client.destroy();
      },
    };
    return storage;
  }

  /**
   * Closes the connection if this storage opened it with
   * {@link RedisStorage.connect}; does nothing for a client you passed in.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect("redis://127.0.0.1:6379");
   * await storage.close();
   * ```
   */
  async close(): Promise<void> {
    const owned = this.#owned;
    this.#owned = undefined;
    await owned?.close();
  }

  #key(key: string): string {
    if (typeof key !== "string" || !key.isWellFormed()) {
      throw new SessionError(
        `RedisStorage: session keys must be strings of well-formed Unicode, got ${
          typeof key === "string" ? JSON.stringify(key) : typeof key
        }. A lone surrogate cannot be stored faithfully as a Redis key; fix getSessionKey.`,
        typeof key === "string" ? key : undefined,
      );
    }
    return this.prefix + key;
  }

  #parse(redisKey: string, text: string, key: string): T {
    try {
      return deserializeSession<T>(text);
    } catch (err) {
      throw new SessionError(
        `RedisStorage: the value at Redis key "${redisKey}" is not JSON text, so it was not ` +
          `written by sessionkit. Delete it, or give this storage a prefix of its own.`,
        key,
        { cause: err },
      );
    }
  }

  /**
   * Returns the session stored under `key`, renewing its TTL (`GETEX ... PX`).
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect<{ count: number }>("redis://127.0.0.1:6379");
   * console.log(await storage.read("42")); // undefined, or the stored session
   * await storage.close();
   * ```
   *
   * @param key The session key.
   */
  async read(key: string): Promise<T | undefined> {
    const redisKey = this.#key(key);
    const text = await this.#readText(redisKey);
    return text === undefined ? undefined : this.#parse(redisKey, text, key);
  }

  /**
   * One `GET` (`GETEX ... PX` with a TTL): the stored text, which is also
   * its version, or `undefined` when nothing is stored.
   */
  async #readText(redisKey: string): Promise<string | undefined> {
    const command = this.ttl === undefined
      ? ["GET", redisKey]
      : ["GETEX", redisKey, "PX", this.#px];
    return replyText(await this.client.sendCommand(command));
  }

  /**
   * Stores `value` under `key` with one `SET` (with `PX` when there is a
   * TTL). Throws a `SessionValueError` before sending anything if the value
   * is not JSON data.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect<{ count: number }>("redis://127.0.0.1:6379");
   * await storage.write("42", { count: 1 });
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param value The session data.
   */
  async write(key: string, value: T): Promise<void> {
    const redisKey = this.#key(key);
    const text = serializeSession(value, key);
    const command = this.ttl === undefined
      ? ["SET", redisKey, text]
      : ["SET", redisKey, text, "PX", this.#px];
    await this.client.sendCommand(command);
  }

  /**
   * Removes the session stored under `key` (`DEL`).
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect("redis://127.0.0.1:6379");
   * await storage.delete("42");
   * await storage.close();
   * ```
   *
   * @param key The session key.
   */
  async delete(key: string): Promise<void> {
    await this.client.sendCommand(["DEL", this.#key(key)]);
  }

  /**
   * Tells whether a session is stored under `key` (`EXISTS`; does not renew
   * the TTL).
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect("redis://127.0.0.1:6379");
   * console.log(await storage.has("42"));
   * await storage.close();
   * ```
   *
   * @param key The session key.
   */
  async has(key: string): Promise<boolean> {
    return Number(await this.client.sendCommand(["EXISTS", this.#key(key)])) > 0;
  }

  /**
   * Lists the keys of all sessions under the prefix, walking the keyspace
   * with `SCAN MATCH` (glob characters in the prefix are escaped).
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect("redis://127.0.0.1:6379");
   * for await (const key of storage.readAllKeys()) console.log(key);
   * await storage.close();
   * ```
   */
  async *readAllKeys(): AsyncGenerator<string> {
    const cut = this.prefix.length;
    for await (const page of scanPages(this.client, this.prefix)) {
      for (const redisKey of page) yield redisKey.slice(cut);
    }
  }

  /**
   * Lists all sessions under the prefix, fetched with `MGET` in batches.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect<{ count: number }>("redis://127.0.0.1:6379");
   * for await (const value of storage.readAllValues()) console.log(value.count);
   * await storage.close();
   * ```
   */
  async *readAllValues(): AsyncGenerator<T> {
    for await (const [, value] of this.readAllEntries()) yield value;
  }

  /**
   * Lists all sessions under the prefix with their keys, fetched with `MGET`
   * in batches.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect<{ count: number }>("redis://127.0.0.1:6379");
   * for await (const [key, value] of storage.readAllEntries()) console.log(key, value.count);
   * await storage.close();
   * ```
   */
  async *readAllEntries(): AsyncGenerator<[key: string, value: T]> {
    const cut = this.prefix.length;
    for await (const [redisKey, text] of scanEntries(this.client, this.prefix)) {
      const key = redisKey.slice(cut);
      yield [key, this.#parse(redisKey, text, key)];
    }
  }

  /**
   * Reads the session of `key` with its version (the stored JSON text
   * itself), renewing its TTL, with the same single `GET`/`GETEX` as
   * {@link RedisStorage.read}.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect<{ count: number }>("redis://127.0.0.1:6379");
   * const { value, version } = await storage.readVersioned("42");
   * await storage.writeIfVersion("42", { count: (value?.count ?? 0) + 1 }, version);
   * await storage.close();
   * ```
   *
   * @param key The session key.
   */
  async readVersioned(key: string): Promise<VersionedValue<T>> {
    const redisKey = this.#key(key);
    const text = await this.#readText(redisKey);
    if (text === undefined) return { value: undefined, version: null };
    return { value: this.#parse(redisKey, text, key), version: text };
  }

  /**
   * Stores `value` under `key` only if the stored version is still
   * `expected` (`null`: only if nothing is stored), in one round trip.
   * Resolves to the new version, or `null` if nothing was written.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect<{ count: number }>("redis://127.0.0.1:6379");
   * const created = await storage.writeIfVersion("new-key", { count: 0 }, null);
   * console.log(created === null ? "someone was faster" : "created");
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param value The session data.
   * @param expected The version that was read, or `null` for "nothing stored".
   */
  async writeIfVersion(key: string, value: T, expected: string | null): Promise<string | null> {
    const redisKey = this.#key(key);
    const text = serializeSession(value, key);
    const args = expected == null ? [text, this.#px] : [text, this.#px, expected];
    const reply = await scripts.writeIfText.run(this.client, [redisKey], args);
    return Number(reply) === 1 ? text : null;
  }

  /**
   * Deletes the session of `key` only if its version is still `expected`, in
   * one round trip. Resolves to `false` if the version differs and nothing
   * was deleted.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect<{ count: number }>("redis://127.0.0.1:6379");
   * const { version } = await storage.readVersioned("42");
   * console.log(await storage.deleteIfVersion("42", version));
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param expected The version that was read, or `null` for "nothing stored".
   */
  async deleteIfVersion(key: string, expected: string | null): Promise<boolean> {
    const redisKey = this.#key(key);
    const args = expected == null ? [] : [expected];
    return Number(await scripts.deleteIfText.run(this.client, [redisKey], args)) === 1;
  }

  #leaseKey(key: string): string {
    if (this.#leaseProblem !== undefined) {
      throw new SessionError(
        `RedisStorage: cannot use leases: ${this.#leaseProblem}. Give the storage a non-empty ` +
          `prefix, or a leasePrefix that does not overlap it.`,
        key,
      );
    }
    return this.leasePrefix + this.#key(key).slice(this.prefix.length);
  }

  /**
   * Takes the lease of `key` for `owner` for `ttl` ms (`SET ... NX PX`, or
   * an extension if `owner` already holds it). Resolves to `false` if
   * someone else holds it.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect("redis://127.0.0.1:6379");
   * const owner = crypto.randomUUID();
   * if (await storage.acquireLease("42", owner, 5000)) {
   *   try {
   *     // ... handle the update of key 42 ...
   *   } finally {
   *     await storage.releaseLease("42", owner);
   *   }
   * }
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param owner A token unique to the holder, e.g. a random UUID.
   * @param ttl How long the lease lasts unless renewed, in ms.
   */
  async acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    const px = leaseTtl(ttl);
    const reply = await scripts.acquireLease.run(this.client, [this.#leaseKey(key)], [owner, px]);
    return Number(reply) === 1;
  }

  /**
   * Extends `owner`'s lease of `key` to `ttl` ms from now. Resolves to
   * `false` if the lease expired or someone else holds it.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect("redis://127.0.0.1:6379");
   * await storage.acquireLease("42", "me", 5000);
   * console.log(await storage.renewLease("42", "me", 5000)); // true
   * await storage.releaseLease("42", "me");
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param owner The token the lease was acquired with.
   * @param ttl The new time to live in ms.
   */
  async renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    const px = leaseTtl(ttl);
    const reply = await scripts.renewLease.run(this.client, [this.#leaseKey(key)], [owner, px]);
    return Number(reply) === 1;
  }

  /**
   * Gives up the lease of `key` if `owner` still holds it; leaves someone
   * else's lease alone.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connect("redis://127.0.0.1:6379");
   * await storage.releaseLease("42", "me");
   * await storage.close();
   * ```
   *
   * @param key The session key.
   * @param owner The token the lease was acquired with.
   */
  async releaseLease(key: string, owner: string): Promise<void> {
    await scripts.releaseLease.run(this.client, [this.#leaseKey(key)], [owner]);
  }
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "the given URL";
  }
}
