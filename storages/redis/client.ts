/**
 * The part of a Redis client that `RedisStorage` uses, and the helpers that
 * turn its replies into strings.
 *
 * @module
 */

/**
 * A node-redis client as `RedisStorage` uses it: sending a raw command.
 * Clients from `npm:redis` v5 and v4 (`createClient()`) both fit without a
 * wrapper, and so does anything with the same `sendCommand`.
 *
 * @example Passing a client from `npm:redis`
 * ```ts
 * import { createClient } from "npm:redis@^5";
 * import { type RedisClientLike, RedisStorage } from "@sessionkit/grammy/redis";
 *
 * const client = createClient({ url: "redis://127.0.0.1:6379" });
 * const like: RedisClientLike = client;
 * const storage = new RedisStorage<{ count: number }>(like);
 * ```
 */
export interface RedisClientLike {
  /**
   * Sends one command, e.g. `["SET", "key", "value"]`, and resolves to the
   * server's reply.
   */
  sendCommand(args: string[]): Promise<unknown>;
}

/**
 * A node-redis cluster client (`createCluster()` from `npm:redis` v5 or v4)
 * as `RedisStorage` uses it: commands routed by their key, and a client per
 * master for listings.
 *
 * @example
 * ```ts
 * import { createCluster } from "npm:redis@^5";
 * import { type NodeRedisClusterLike, RedisStorage } from "@sessionkit/grammy/redis";
 *
 * const cluster = createCluster({ rootNodes: [{ url: "redis://127.0.0.1:7000" }] });
 * const like: NodeRedisClusterLike = cluster;
 * const storage = new RedisStorage<{ count: number }>(like);
 * ```
 */
export interface NodeRedisClusterLike {
  /** Sends `args` to the master of `firstKey`'s slot. */
  sendCommand(
    firstKey: string | undefined,
    isReadonly: boolean | undefined,
    args: string[],
  ): Promise<unknown>;
  /** The masters, as the client last learned them. */
  readonly masters: readonly { readonly address: string }[];
  /** The client of one node. */
  nodeClient(node: { readonly address: string }): RedisClientLike | Promise<RedisClientLike>;
}

/**
 * An ioredis client (`new Redis()` from `npm:ioredis` v5) as `RedisStorage`
 * uses it. It must not have a `keyPrefix` (use the storage's `prefix`).
 *
 * @example
 * ```ts
 * import { Redis } from "npm:ioredis@^5";
 * import { type IoRedisLike, RedisStorage } from "@sessionkit/grammy/redis";
 *
 * const redis = new Redis("redis://127.0.0.1:6379");
 * const like: IoRedisLike = redis;
 * const storage = new RedisStorage<{ count: number }>(like);
 * ```
 */
export interface IoRedisLike {
  /** `false` for a single-server client. */
  readonly isCluster: boolean;
  /** Sends a raw command, e.g. `call("SET", ["key", "value"])`. */
  call(command: string, args: string[]): Promise<unknown>;
}

/**
 * An ioredis cluster client (`new Cluster()` from `npm:ioredis` v5) as
 * `RedisStorage` uses it.
 *
 * @example
 * ```ts
 * import { Cluster } from "npm:ioredis@^5";
 * import { type IoRedisClusterLike, RedisStorage } from "@sessionkit/grammy/redis";
 *
 * const cluster = new Cluster([{ host: "127.0.0.1", port: 7000 }]);
 * const like: IoRedisClusterLike = cluster;
 * const storage = new RedisStorage<{ count: number }>(like);
 * ```
 */
export interface IoRedisClusterLike extends IoRedisLike {
  /** The client of each master. */
  nodes(role: "master"): (IoRedisLike & { readonly options?: { host?: string; port?: number } })[];
}

/**
 * Every client `RedisStorage` takes: node-redis (v4, v5) and ioredis (v5),
 * each as a single-server or a cluster client.
 *
 * @example
 * ```ts
 * import { createClient } from "npm:redis@^5";
 * import type { RedisClient } from "@sessionkit/grammy/redis";
 *
 * const client: RedisClient = await createClient().connect();
 * ```
 */
export type RedisClient = RedisClientLike | NodeRedisClusterLike | IoRedisLike | IoRedisClusterLike;

// `ignoreBOM`: a key's or value's leading U+FEFF is its own, not a byte
// order mark to drop.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

/** A bulk-string reply as a string, or `undefined` for a nil reply. */
export function replyText(reply: unknown): string | undefined {
  if (reply === null || reply === undefined) return undefined;
  if (typeof reply === "string") return reply;
  if (reply instanceof Uint8Array) return decoder.decode(reply);
  return String(reply);
}

/** An array reply as a list of entries, each turned by {@link replyText}. */
export function replyList(reply: unknown): (string | undefined)[] {
  if (!Array.isArray(reply)) {
    throw new TypeError(`RedisStorage: expected an array reply from Redis, got ${typeof reply}.`);
  }
  return reply.map(replyText);
}

/** Whether `err` is a Redis error reply starting with `code`, e.g. `NOSCRIPT`. */
export function isErrorCode(err: unknown, code: string): boolean {
  return err instanceof Error && err.message.startsWith(code);
}
