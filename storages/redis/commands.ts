/**
 * The one way `RedisStorage` talks to Redis, whatever client it was given:
 * `send` a command that touches one key (a cluster client routes it to the
 * master of that key's slot), and `masters` to walk every master with
 * `SCAN`. One adapter per kind of client; the kind is told from the client's
 * shape, never by importing the client library.
 *
 * | client                                   | `send`                               | `masters`                  |
 * | ---------------------------------------- | ------------------------------------ | -------------------------- |
 * | node-redis `createClient()` (v4, v5)     | `sendCommand(args)`                  | the client itself          |
 * | node-redis `createCluster()` (v4, v5)    | `sendCommand(key, false, args)`      | `nodeClient(m)`, `masters` |
 * | ioredis `new Redis()`                    | `call(command, args)`                | the client itself          |
 * | ioredis `new Cluster()`                  | `call(command, args)`                | `nodes("master")`          |
 *
 * @module
 */

import type {
  IoRedisClusterLike,
  IoRedisLike,
  NodeRedisClusterLike,
  RedisClient,
  RedisClientLike,
} from "./client.ts";

/** One master, as a listing visits it. */
export interface MasterNode {
  /** Its address (`host:port`), by which masters are put in a stable order. */
  readonly id: string;
  /** Sends a command to this very node (`SCAN`), unrouted. */
  send(args: string[]): Promise<unknown>;
}

/** What the driver sends its commands through. */
export interface RedisCommands {
  /** Which kind of client this is, for messages. */
  readonly kind: "node-redis" | "node-redis cluster" | "ioredis" | "ioredis cluster";
  /** Whether the client is a cluster client (keys then carry hash tags). */
  readonly cluster: boolean;
  /**
   * Sends `args`, a command whose (first) key is `key`, to the node that
   * holds `key` (any node for a command without a key).
   */
  send(key: string | undefined, args: string[]): Promise<unknown>;
  /** The masters to `SCAN`, in a stable order; a standalone client is its own one master. */
  masters(): Promise<MasterNode[]>;
}

type Loose = Record<string, unknown> | null | undefined;

function isFunction(value: unknown): value is (...args: never[]) => unknown {
  return typeof value === "function";
}

/**
 * The adapter for `client`, told from its shape. Throws a `TypeError` naming
 * what fits for anything else, and for an ioredis client with a `keyPrefix`
 * of its own (listings would not see it: use the storage's `prefix`).
 */
export function commandsFor(client: RedisClient): RedisCommands {
  const c = client as unknown as Loose;
  if (
    c !== null && typeof c === "object" && isFunction(c.call) && typeof c.isCluster === "boolean"
  ) {
    refuseKeyPrefix(c);
    if (c.isCluster) {
      if (!isFunction(c.nodes)) throw notAClient(client, "an ioredis Cluster without nodes()");
      return ioredisCluster(client as IoRedisClusterLike);
    }
    return ioredis(client as IoRedisLike);
  }
  if (c !== null && typeof c === "object" && isFunction(c.sendCommand)) {
    if (isFunction(c.nodeClient) && "masters" in c) {
      return nodeRedisCluster(client as NodeRedisClusterLike);
    }
    return nodeRedis(client as RedisClientLike);
  }
  throw notAClient(client);
}

function notAClient(client: unknown, what?: string): TypeError {
  const given = what ??
    (client === null
      ? "null"
      : typeof client === "object"
      ? `an object (${(client as object).constructor?.name ?? "no constructor"}) with neither ` +
        `sendCommand nor call`
      : typeof client);
  return new TypeError(
    `RedisStorage: the first argument must be a connected Redis client, got ${given}. Pass ` +
      `createClient() or createCluster() from npm:redis (v4 or v5), or new Redis() or new ` +
      `Cluster() from npm:ioredis (v5). To let the storage open the connection itself, use ` +
      `RedisStorage.connect(url) or RedisStorage.connectCluster([url, ...]).`,
  );
}

function refuseKeyPrefix(c: Record<string, unknown>): void {
  const options = c.options as Loose;
  const nested = options?.redisOptions as Loose;
  const keyPrefix = options?.keyPrefix ?? nested?.keyPrefix;
  if (typeof keyPrefix === "string" && keyPrefix !== "") {
    throw new TypeError(
      `RedisStorage: this ioredis client has keyPrefix "${keyPrefix}", which ioredis adds to ` +
        `keys but not to SCAN patterns, so listings would find nothing. Create the client ` +
        `without keyPrefix and give the storage { prefix: "${keyPrefix}" } instead.`,
    );
  }
}

function nodeRedis(client: RedisClientLike): RedisCommands {
  const self: MasterNode = { id: "", send: (args) => client.sendCommand(args) };
  return {
    kind: "node-redis",
    cluster: false,
    send: (_key, args) => client.sendCommand(args),
    masters: () => Promise.resolve([self]),
  };
}

function nodeRedisCluster(cluster: NodeRedisClusterLike): RedisCommands {
  return {
    kind: "node-redis cluster",
    cluster: true,
    send: (key, args) => cluster.sendCommand(key, false, args),
    masters: () =>
      Promise.resolve(
        known(cluster.masters.map((master) => ({
          id: master.address,
          send: async (args: string[]) => (await cluster.nodeClient(master)).sendCommand(args),
        }))),
      ),
  };
}

function ioredis(client: IoRedisLike): RedisCommands {
  const self: MasterNode = { id: "", send: (args) => client.call(args[0], args.slice(1)) };
  return {
    kind: "ioredis",
    cluster: false,
    send: (_key, args) => client.call(args[0], args.slice(1)),
    masters: () => Promise.resolve([self]),
  };
}

function ioredisCluster(cluster: IoRedisClusterLike): RedisCommands {
  return {
    kind: "ioredis cluster",
    cluster: true,
    // ioredis finds the key of a command itself (EVALSHA's too) and routes by it.
    send: (_key, args) => cluster.call(args[0], args.slice(1)),
    async masters() {
      // Until ioredis has loaded the slots (a Cluster just created), it knows
      // no node; a routed command waits for that in its offline queue.
      if (cluster.nodes("master").length === 0) await cluster.call("PING", []);
      return known(
        cluster.nodes("master").map((node) => ({
          id: `${node.options?.host ?? ""}:${node.options?.port ?? ""}`,
          send: (args: string[]) => node.call(args[0], args.slice(1)),
        })),
      );
    },
  };
}

/** `masters` in a stable order; a clear error when there are none (rather than an empty listing). */
function known(masters: MasterNode[]): MasterNode[] {
  if (masters.length === 0) {
    throw new Error(
      "RedisStorage: the cluster client knows no master, so a listing could not visit any. " +
        "Connect the client (await cluster.connect()) before listing sessions.",
    );
  }
  return ordered(masters);
}

function ordered(masters: MasterNode[]): MasterNode[] {
  return masters.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
