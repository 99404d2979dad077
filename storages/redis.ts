/**
 * `RedisStorage`: sessions in Redis, for bots that run in more than one
 * process or must survive a restart.
 *
 * Each session is one Redis string at `prefix + key` (on a Redis Cluster at
 * `{prefix + key}`, a hash tag that keeps a session and its lease in one
 * slot) holding exactly the JSON text of the serialization contract. A TTL is set with the write itself
 * (`SET ... PX`) and renewed by reads (`GETEX ... PX`); without a TTL, reads
 * (`GETEX ... PERSIST`) and writes remove an expiry left by an earlier
 * configuration. A read is always that one `GETEX`, versioned or not.
 * Listings walk the keyspace with `SCAN MATCH` (never `KEYS`; on a cluster,
 * every master) and fetch values with `MGET` in batches (on a cluster, a
 * `GET` per key: `MGET` across slots is refused there). Works with node-redis
 * v4 and v5 and ioredis v5, single-server and cluster clients alike. Conditional writes (compare-and-set) and
 * per-key leases run as Lua scripts in one round trip. Needs Redis 6.2 or
 * newer.
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
 * @example A Redis Cluster, opened from its seed nodes
 * ```ts
 * import { RedisStorage } from "@sessionkit/grammy/redis";
 *
 * const storage = await RedisStorage.connectCluster<{ count: number }>([
 *   "redis://127.0.0.1:7000",
 *   "redis://127.0.0.1:7001",
 * ]);
 * await storage.close();
 * ```
 *
 * @module
 */

import { AsyncDriverStorage } from "./shared/async_driver_storage.ts";
import type { NodeRedisClusterLike, RedisClient, RedisClientLike } from "./redis/client.ts";
import { commandsFor } from "./redis/commands.ts";
import { openClient, openCluster } from "./redis/connect.ts";
import { RedisDriver } from "./redis/driver.ts";
import { withTimeout } from "./shared/timeout.ts";
import { layoutFor } from "./redis/layout.ts";
import {
  type RedisConnectOptions,
  type RedisStorageOptions,
  resolveOptions,
} from "./redis/options.ts";

export type {
  IoRedisClusterLike,
  IoRedisLike,
  NodeRedisClusterLike,
  RedisClient,
  RedisClientLike,
} from "./redis/client.ts";
export type { RedisConnectOptions, RedisStorageOptions } from "./redis/options.ts";
export type { MaybePromise, StorageAdapter } from "../src/storage.ts";
export type { ConditionalStorage, LeaseStorage, VersionedValue } from "../src/capabilities.ts";
export { AsyncDriverStorage } from "./shared/async_driver_storage.ts";
export { DriverStorage } from "./shared/driver_storage.ts";

/**
 * Stores sessions in Redis: an {@link AsyncDriverStorage} over Redis, so it works
 * with `session()`, `lazySession()` and multi sessions of sessionkit and
 * grammY alike, with conditional writes and per-key leases for running
 * several bot processes.
 *
 * - Key layout: a session lives at `prefix + key` (default prefix
 *   `"session:"`); its lease, if any, at `leasePrefix + key` (default
 *   `"sessionkit-lease:" + prefix`), which the session listing never matches.
 *   On a cluster client, at `{prefix + key}` and `leasePrefix + {prefix + key}`:
 *   one hash tag, so one slot (the prefixes may then hold no braces).
 * - The version of a session, for conditional writes, is its stored JSON
 *   text itself: a read yields it for free, a conditional write sends it
 *   along (the session's size once more) and a script compares it with what
 *   Redis holds. There is no second record per session and nothing is hashed.
 * - A dropped connection fails the commands it hits; nothing is half-written,
 *   since every write is a single command or script.
 * - A server that goes silent fails each operation after `timeout` ms
 *   (default 10 000) with a `SessionError` naming it; a write given up this
 *   way may still land later.
 *
 * Every method answers with a promise; a bad key or value rejects it before
 * anything is sent.
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
 * const { value, version } = await storage.readVersioned("42");
 * await storage.writeIfVersion("42", { count: (value?.count ?? 0) + 1 }, version);
 * for await (const key of storage.readAllKeys()) console.log(key); // "42"
 * await storage.close();
 * ```
 */
export class RedisStorage<T, C extends RedisClient = RedisClientLike>
  extends AsyncDriverStorage<T> {
  /**
   * The client this storage sends its commands through: the one given to
   * the constructor, or the one `connect` (a connection with `sendCommand`
   * that opens a new node-redis client after each loss) or
   * `connectCluster` (a node-redis cluster client) opened. Typed as `C`,
   * which is inferred from the constructor's argument; with an explicit
   * session type and another kind of client, name it too
   * (`new RedisStorage<Data, Cluster>(cluster)`) to get its type here.
   */
  readonly client: C;
  /** What is prepended to session keys to form Redis keys. */
  readonly prefix: string;
  /** The time to live in milliseconds, or `undefined` for none. */
  readonly ttl: number | undefined;
  /** What is prepended to session keys to form the Redis keys of leases. */
  readonly leasePrefix: string;
  /** How long one operation may take, in milliseconds; `Infinity` for no bound. */
  readonly timeout: number;
  readonly #driver: RedisDriver;

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
   * @example A cluster client of ioredis
   * ```ts
   * import { Cluster } from "npm:ioredis@^5";
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const cluster = new Cluster([{ host: "127.0.0.1", port: 7000 }]);
   * const storage = new RedisStorage<{ count: number }, Cluster>(cluster, { prefix: "bot:" });
   * ```
   *
   * @param client A connected client: `createClient()` or `createCluster()`
   *   from `npm:redis` v5 or v4, or `new Redis()` or `new Cluster()` from
   *   `npm:ioredis` v5 (without `keyPrefix`). Anything else is refused with
   *   a `TypeError`.
   * @param options The prefix, TTL, lease prefix and timeout.
   */
  constructor(client: C | RedisClient, options?: RedisStorageOptions) {
    const resolved = resolveOptions(options);
    const driver = new RedisDriver(commandsFor(client), resolved);
    super(withTimeout(driver, resolved.timeout));
    this.#driver = driver;
    this.client = client as C;
    this.prefix = resolved.prefix;
    this.ttl = resolved.ttl;
    this.leasePrefix = resolved.leasePrefix;
    this.timeout = resolved.timeout;
  }

  /**
   * Opens a connection with `createClient` from `npm:redis` v5 and returns a
   * storage that owns it: {@link RedisStorage.close} closes it. Invalid
   * options are refused before anything is opened. Connecting is bounded by
   * the `timeout` option (default 10 000 ms; `Infinity` for none): a server
   * that cannot be reached, or accepts the connection and never answers,
   * makes it reject with a `SessionError` instead of waiting forever.
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
    const { timeout } = resolveOptions(storageOptions);
    const opened = await openClient(url, onError, timeout);
    const storage = new RedisStorage<T, RedisClientLike>(opened.client, storageOptions);
    storage.#driver.own(opened);
    return storage;
  }

  /**
   * Opens a Redis Cluster client with `createCluster` from `npm:redis` v5,
   * from a list of seed nodes (any one that answers is enough), and returns
   * a storage that owns it: {@link RedisStorage.close} closes it. Credentials
   * and TLS (`rediss:`) of the first URL apply to every node. Rejects with a
   * `SessionError` if no seed node answers.
   *
   * @example
   * ```ts
   * import { RedisStorage } from "@sessionkit/grammy/redis";
   *
   * const storage = await RedisStorage.connectCluster(
   *   ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"],
   *   { prefix: "bot:", ttl: 7 * 24 * 60 * 60 * 1000 },
   * );
   * await storage.close();
   * ```
   *
   * @param urls `redis://` or `rediss://` URLs of one or more cluster nodes.
   * @param options Storage options and an error callback.
   * @returns A storage with an open cluster client.
   */
  static async connectCluster<T>(
    urls: readonly string[],
    options: RedisConnectOptions = {},
  ): Promise<RedisStorage<T, NodeRedisClusterLike>> {
    if (!Array.isArray(urls) || urls.length === 0 || urls.some((u) => typeof u !== "string")) {
      throw new TypeError(
        "RedisStorage.connectCluster: pass a non-empty array of node URLs, e.g. " +
          '["redis://127.0.0.1:7000"]. For a single server, use RedisStorage.connect(url).',
      );
    }
    const { onError, ...storageOptions } = options;
    const resolved = resolveOptions(storageOptions);
    layoutFor(true, resolved);
    const opened = await openCluster(urls, onError, resolved.timeout);
    const storage = new RedisStorage<T, NodeRedisClusterLike>(opened.client, storageOptions);
    storage.#driver.own(opened);
    return storage;
  }
}
