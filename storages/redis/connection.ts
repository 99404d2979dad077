/**
 * The connection `RedisStorage.connect` opens to one Redis server: a
 * node-redis client per TCP connection. The client never reconnects by
 * itself; when its connection is lost (or found silent), it is dropped and a
 * new client is opened, backing off from 50 ms up to 2 s, for as long as it
 * takes. Commands sent meanwhile wait for the new client (each is bounded by
 * the storage's timeout); commands that were in flight on the lost one fail,
 * their outcome unknown.
 *
 * Why not node-redis's own reconnection: it keeps one command queue and one
 * reply decoder across the old socket and the new one, and an error the old
 * socket reports late (under Deno a write's `EPIPE` can arrive after the
 * connection closed, and node-redis does not check which socket an error
 * came from) fails the commands already sent on the new socket while their
 * replies still come: from then on every reply is taken for the reply of a
 * later command. `tests/chaos_test.ts` found it: after connections were cut,
 * one process read other keys' sessions, a conditional write was told "ok"
 * by another command's reply, and acknowledged writes were lost. With one
 * client per connection, a late event of an old socket reaches only its own
 * dead client.
 *
 * @module
 */

// @ts-types="./redis_module.d.ts"
import { createClient } from "npm:redis@^5";
import { backgroundTimeout } from "../../src/timers.ts";
import type { RedisClientLike } from "./client.ts";

/** What is used of a node-redis client. */
export interface NodeRedisConnection {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  readonly options?: unknown;
  sendCommand(args: string[]): Promise<unknown>;
  connect(): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
  on(event: "error", listener: (err: Error) => void): unknown;
}

/** What the connection tells the outage log. */
export interface ConnectionLog {
  /** An error of the connection in use (`ready`: it still works) or of one being lost. */
  error(err: Error, ready: boolean): void;
  /** A new connection is being opened. */
  reconnecting(): void;
  /** A new connection works. */
  ready(): void;
}

/** Waits `ms`, or less once `signal` is aborted; never keeps a process alive. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = backgroundTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * A node-redis client for `url` that gives up on its first failure, with an
 * error listener (so that an error never ends the process).
 */
export function singleShotClient(
  url: string,
  onError: (client: NodeRedisConnection, err: Error) => void,
): NodeRedisConnection {
  const client = createClient({
    url,
    socket: { reconnectStrategy: false },
  }) as unknown as NodeRedisConnection;
  client.on("error", (err) => onError(client, err));
  return client;
}

/**
 * One connection to a Redis server at a time (see the module doc). The
 * storage sees it as a client with `sendCommand`.
 *
 * @example
 * ```ts ignore
 * const connection = new FreshConnection(url, 10_000, log);
 * await connection.open();
 * await connection.sendCommand(["PING"]);
 * await connection.close();
 * ```
 */
export class FreshConnection implements RedisClientLike {
  readonly #url: string;
  readonly #timeout: number;
  readonly #log: ConnectionLog;
  readonly #stop = new AbortController();
  #current: NodeRedisConnection | undefined;
  /** The client being connected by the reopening loop. */
  #attempt: NodeRedisConnection | undefined;
  #reopening: Promise<NodeRedisConnection | undefined> | undefined;
  #closed: Promise<void> | undefined;

  /**
   * @param url The server's URL.
   * @param timeout How long one attempt to connect may take, ms (the storage's timeout).
   * @param log Where the connection's life is told.
   */
  constructor(url: string, timeout: number, log: ConnectionLog) {
    this.#url = url;
    this.#timeout = timeout === Infinity ? 10_000 : timeout;
    this.#log = log;
  }

  /** Whether the connection has not been closed. */
  get isOpen(): boolean {
    return this.#closed === undefined;
  }

  /** The node-redis client in use, if one is connected. */
  get current(): NodeRedisConnection | undefined {
    return this.#current;
  }

  /** The options of the client in use (read by `copySessions`'s namespace check). */
  get options(): unknown {
    return this.#current?.options ?? { url: this.#url };
  }

  /** Opens the first connection: the client's `connect()`, which rejects on failure. */
  async open(client: NodeRedisConnection): Promise<void> {
    await client.connect();
    this.#current = client;
  }

  /** A new client, whose errors are told to the log and whose loss is noticed. */
  #make(): NodeRedisConnection {
    return singleShotClient(this.#url, (client, err) => this.#onError(client, err));
  }

  /** Watches `client`, the first connection (made by the caller), as the later ones are. */
  adopt(client: NodeRedisConnection): void {
    client.on("error", (err) => this.#onError(client, err));
  }

  /** An error of `client`: told to the log; a client that closed is given up. */
  #onError(client: NodeRedisConnection, err: Error): void {
    if (client === this.#attempt) return this.#log.error(err, false); // a failed attempt
    if (client !== this.#current) return; // an old one, given up already
    this.#log.error(err, client.isReady);
    if (!client.isOpen) this.drop(client, "it was lost");
  }

  /** Sends `args` over the connection in use, waiting for a new one while there is none. */
  async sendCommand(args: string[]): Promise<unknown> {
    const client = this.#current ?? await this.#reopen();
    if (client === undefined) throw new Error("RedisStorage: the connection was closed.");
    try {
      return await client.sendCommand(args);
    } catch (err) {
      throw this.#explain(client, err);
    }
  }

  /**
   * What node-redis reports for a command of a client torn down here
   * ("Disconnects client") says neither why nor that the command may have
   * run: the error says both, with node-redis's as its cause.
   */
  #explain(client: NodeRedisConnection, err: unknown): unknown {
    const why = this.#dropped.get(client);
    const torn = err instanceof Error && (err.constructor.name === "DisconnectsClientError" ||
      err.message === "Disconnects client");
    if (why === undefined || !torn) return err;
    return new Error(
      `the connection to Redis was dropped before the reply came (${why}); the command may ` +
        `still have run on the server`,
      { cause: err },
    );
  }

  /** Why each client torn down here was given up. */
  readonly #dropped = new WeakMap<NodeRedisConnection, string>();

  /**
   * Gives `client` up (its connection was lost, or went silent: `why`): it
   * is torn down, its commands in flight fail, and a new client is opened.
   */
  drop(client: NodeRedisConnection, why: string): void {
    if (client !== this.#current) return;
    this.#current = undefined;
    this.#teardown(client, why);
    if (this.#closed === undefined && !this.#stop.signal.aborted) void this.#reopen();
  }

  /** Destroys `client`'s socket, failing its outstanding commands (never node-redis's `close()`). */
  #teardown(client: NodeRedisConnection | undefined, why: string): void {
    if (client === undefined) return;
    this.#dropped.set(client, why);
    try {
      if (client.isOpen) client.destroy();
    } catch {
      // torn down already
    }
  }

  #reopen(): Promise<NodeRedisConnection | undefined> {
    this.#reopening ??= this.#reopenLoop().finally(() => (this.#reopening = undefined));
    return this.#reopening;
  }

  async #reopenLoop(): Promise<NodeRedisConnection | undefined> {
    const signal = this.#stop.signal;
    for (let attempt = 0; !signal.aborted; attempt++) {
      await pause(Math.min(50 * 2 ** attempt, 2000), signal);
      if (signal.aborted) break;
      this.#log.reconnecting();
      const client = this.#make();
      this.#attempt = client;
      const connected = await this.#connectWithin(client);
      this.#attempt = undefined;
      if (!connected) continue;
      if (signal.aborted) {
        this.#teardown(client, "the storage was closed");
        break;
      }
      this.#current = client;
      this.#log.ready();
      return client;
    }
    return undefined;
  }

  /** `client.connect()`, given up (and the client torn down) after the timeout. */
  async #connectWithin(client: NodeRedisConnection): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<false>((resolve) => {
      timer = backgroundTimeout(() => resolve(false), this.#timeout);
    });
    const connecting = client.connect().then(() => true, () => false);
    const connected = await Promise.race([connecting, late]);
    clearTimeout(timer);
    if (!connected) this.#teardown(client, "it did not connect in time");
    return connected;
  }

  /**
   * Stops reconnecting: commands waiting for a new connection fail at once,
   * and an attempt to connect in progress (to a server that accepted the
   * connection and does not answer, say) is given up now, not after the
   * timeout. The connection in use, if any, keeps working until `close`.
   */
  stop(): void {
    this.#stop.abort();
    this.#teardown(this.#attempt, "the storage was closed");
  }

  /**
   * Stops reconnecting and tears the connection in use down at once
   * (replies still outstanding fail); once. The storage stops the
   * connection and waits for outstanding replies before it calls this
   * (`in_flight.ts`).
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.stop();
      await this.#reopening;
      const client = this.#current;
      this.#current = undefined;
      this.#teardown(client, "the storage was closed");
    })();
    return this.#closed;
  }
}
