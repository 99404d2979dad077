/**
 * The part of `npm:redis` v5 that storages/redis/connect.ts uses, declared
 * here so that tools that walk the published modules' types (`deno doc`)
 * do not load node-redis's declarations and `@types/node`.
 * `tests/redis_module_types_test.ts` checks that node-redis's real
 * `createClient` fits this declaration.
 */

/** The options given to `createClient`. */
export interface ClientOptions {
  /** The server's URL. */
  url: string;
  /** Socket options. */
  socket?: { reconnectStrategy?: (retries: number, cause: Error) => number | Error };
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
