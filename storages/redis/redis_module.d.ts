/**
 * The part of `npm:redis` v5 that storages/redis/connect.ts uses, declared
 * here so that tools that walk the published modules' types (`deno doc`)
 * do not load node-redis's declarations and `@types/node`.
 * `tests/redis_module_types_test.ts` checks that node-redis's real
 * `createClient` fits this declaration, `tests/redis_cluster_test.ts` that
 * `createCluster` does.
 */

/** The options given to `createClient`. */
export interface ClientOptions {
  /** The server's URL. */
  url: string;
  /** Socket options. */
  socket?: {
    reconnectStrategy?: false | ((retries: number, cause: Error) => number | Error | false);
  };
}

/** A node-redis client, as far as connect.ts uses it. */
export interface NodeRedisClient {
  /** Whether the connection is open. */
  readonly isOpen: boolean;
  /** Listens to connection errors. */
  on(event: "error", listener: (err: Error) => void): unknown;
  /** Opens the connection. */
  connect(): Promise<unknown>;
  /** Closes it after pending replies. */
  close(): Promise<unknown>;
  /** Closes it at once. */
  destroy(): void;
  /** Sends a raw command. */
  sendCommand(args: string[]): Promise<unknown>;
}

/** Creates a client; `connect()` opens it. */
export function createClient(options: ClientOptions): NodeRedisClient;

/** The options given to `createCluster`. */
export interface ClusterOptions {
  /** Seed nodes: any one that answers tells the client about the others. */
  rootNodes: { url: string }[];
  /** Options of every node's connection. */
  defaults?: {
    /** Fail a command for a node that is not connected at once, instead of queueing it. */
    disableOfflineQueue?: boolean;
    username?: string;
    password?: string;
    socket?: {
      tls?: true;
      reconnectStrategy?: (retries: number, cause: Error) => number | Error;
    };
  };
}

/** A node-redis cluster client, as connect.ts uses it. */
export interface NodeRedisCluster {
  /** Whether the cluster client is open. */
  readonly isOpen: boolean;
  /** Listens to errors of the cluster client and of its nodes' connections. */
  on(event: "error" | "node-error", listener: (err: Error) => void): unknown;
  /** Learns the topology from a seed node and connects to the masters. */
  connect(): Promise<unknown>;
  /** Closes every connection after pending replies. */
  close(): Promise<unknown>;
  /** Closes every connection at once. */
  destroy(): void;
  /** Sends a raw command to the master of `firstKey`'s slot. */
  sendCommand(
    firstKey: string | undefined,
    isReadonly: boolean | undefined,
    args: string[],
  ): Promise<unknown>;
  /** The masters. */
  readonly masters: readonly { readonly address: string }[];
  /** The client of one node. */
  nodeClient(node: { readonly address: string }): Promise<NodeRedisClient>;
}

/** Creates a cluster client; `connect()` opens it. */
export function createCluster(options: ClusterOptions): NodeRedisCluster;
