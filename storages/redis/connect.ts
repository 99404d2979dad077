/**
 * Opening a connection of `RedisStorage`'s own (`RedisStorage.connect`,
 * `RedisStorage.connectCluster`): a client (or cluster client) from
 * `npm:redis` v5 that gives up quickly on a server it never reached,
 * reconnects for as long as it takes once it was connected, and closes
 * without hanging on a reply that never comes. A cluster client also follows
 * a failover: while a master's connection fails it relearns the topology
 * (see `followFailover`), and a command for a node that is not connected
 * fails at once instead of waiting for a node that may never come back.
 *
 * @module
 */

// @ts-types="./redis_module.d.ts"
import { createClient, createCluster } from "npm:redis@^5";
import { SessionError } from "../../src/errors.ts";
import { backgroundTimeout } from "../../src/timers.ts";
import { FreshConnection, type NodeRedisConnection } from "./connection.ts";
import type { NodeRedisClusterLike, RedisClientLike } from "./client.ts";

/** A connected client, how to close it, and what to do when one of its calls timed out. */
export interface OpenedClient<C = RedisClientLike> {
  client: C;
  /**
   * Stops what could open or check connections (reconnecting, connection
   * checks): the storage calls it when closing, before it waits for replies.
   */
  stop(): void;
  /** Tears the connection down at once (the storage first waits for replies, up to `grace`). */
  close(): Promise<void>;
  /** How long closing waits for the replies outstanding, in ms: the timeout, at most 2 s. */
  grace: number;
  timedOut?(): void;
}

/** How long a close waits for outstanding replies: a call is given up after `timeout` anyway. */
function closeGrace(timeout: number): number {
  return Math.min(2000, timeout);
}

/** Reconnecting for a cluster's nodes: give up early before the first connection only. */
function reconnect(opened: () => boolean) {
  return (retries: number, cause: Error) =>
    opened() ? Math.min(50 * 2 ** retries, 2000) : retries >= 2 ? cause : 100 * (retries + 1);
}

/**
 * `connecting`, bounded to `ms` (`Infinity`: unbounded). A server that
 * accepts the TCP connection and never answers (a hung or stopped server, a
 * port behind a load balancer with nothing behind it) leaves node-redis's
 * `connect()` waiting for the reply to its first command forever: its
 * `connectTimeout` covers the TCP handshake only. Past the bound, `giveUp`
 * tears the client down and this rejects with a `SessionError` naming the
 * bound and `what()` went wrong; a late rejection of `connecting` is
 * absorbed.
 */
async function connectWithin(
  connecting: Promise<unknown>,
  ms: number,
  where: string,
  giveUp: () => void,
  what: () => string,
): Promise<void> {
  if (ms === Infinity) {
    await connecting;
    return;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const why = what();
      giveUp();
      reject(
        new SessionError(
          `RedisStorage: cannot connect to ${where}: ${why} within ${ms} ms (the storage's ` +
            `timeout), so connecting was given up. Check that the server is up, reachable and ` +
            `not stopped or overloaded, and that the URL names a Redis server, or raise the ` +
            `timeout option (now ${ms} ms).`,
        ),
      );
    }, ms);
  });
  connecting.catch(() => {});
  try {
    await Promise.race([connecting, bound]);
  } finally {
    clearTimeout(timer);
  }
}

/** An error in one line: its message (or code, or name), without the stack. */
function reason(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return (err.message || (typeof code === "string" ? code : "") || err.name).replace(/\s+/g, " ");
}

function report(onError: ((error: Error) => void) | undefined, err: Error, node = ""): void {
  if (onError !== undefined) return onError(err);
  console.error(
    `RedisStorage: Redis connection error${node} (the client reconnects): ${reason(err)}`,
  );
}

/**
 * Reports the errors of a connection once it was opened: each one to
 * `onError` when given; otherwise an outage takes two console lines, one when
 * the connection is lost (with the reason, no stack) and one when it is back
 * (how long it was down, the reconnection attempts and errors in between).
 */
function outageLog(onError: ((error: Error) => void) | undefined, server: string) {
  let down: { since: number; attempts: number; errors: number } | undefined;
  const lose = (why: string) => {
    down = { since: Date.now(), attempts: 0, errors: 0 };
    console.error(`RedisStorage: lost the connection to ${server} (${why}); reconnecting`);
    return down;
  };
  return {
    error(err: Error, ready: boolean): void {
      if (onError !== undefined) return onError(err);
      if (ready) {
        return console.error(`RedisStorage: error on the connection to ${server}: ${reason(err)}`);
      }
      (down ?? lose(reason(err))).errors++;
    },
    reconnecting(): void {
      if (onError === undefined) (down ?? lose("connection closed")).attempts++;
    },
    silent(ms: number): void {
      if (onError === undefined && down === undefined) {
        lose(`no answer within ${ms} ms: the connection went silent`);
      }
    },
    ready(): void {
      if (down === undefined) return;
      const { since, attempts, errors } = down;
      down = undefined;
      console.error(
        `RedisStorage: the connection to ${server} is back after ${Date.now() - since} ms down ` +
          `(${attempts} reconnection attempts, ${errors} errors)`,
      );
    },
  };
}

/** How often a cluster client relearns the topology while a master is unreachable. */
const REDISCOVER_EVERY_MS = 500;

/**
 * What `followFailover` uses of node-redis v5's cluster client beyond its
 * declared surface: each master's client, and the slot map's `rediscover`
 * (internal: node-redis calls it itself only on a `MOVED` or `ASK` reply,
 * which a dead master never sends).
 */
interface ClusterInternals {
  readonly isOpen: boolean;
  readonly masters: readonly {
    readonly address: string;
    readonly client?: { isReady?: boolean };
  }[];
  readonly _slots?: { rediscover?(startWith: unknown): Promise<void> };
}

/**
 * node-redis v5 keeps routing a dead master's slots to it: it relearns the
 * topology only when a live node answers `MOVED`, and nothing is sent to a
 * live node for those slots. So while the connection to a master at
 * `address` fails, ask a connected master for the topology every 500 ms
 * until `address` is no master any more (its replica was promoted; node-redis
 * then drops the dead node's client) or it is connected again. Returns a
 * function that stops it, for `close()`.
 */
function followFailover(cluster: ClusterInternals): {
  nodeFailed(address: string): void;
  stop(): void;
} {
  const slots = cluster._slots;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failing: string | undefined;
  const step = async () => {
    timer = undefined;
    const dead = cluster.masters.find((m) => m.address === failing);
    if (!cluster.isOpen || dead === undefined || dead.client?.isReady === true) {
      failing = undefined;
      return;
    }
    const live = cluster.masters.find((m) => m !== dead && m.client?.isReady === true);
    if (live !== undefined) await slots?.rediscover?.(live.client).catch(() => {});
    if (cluster.isOpen && failing !== undefined) timer = setTimeout(step, REDISCOVER_EVERY_MS);
  };
  return {
    nodeFailed(address) {
      if (typeof slots?.rediscover !== "function" || failing !== undefined) return;
      failing = address;
      timer = setTimeout(step, REDISCOVER_EVERY_MS);
    },
    stop() {
      clearTimeout(timer);
      failing = undefined;
    },
  };
}

/**
 * Connects to the cluster that the seed nodes `urls` belong to (any one that
 * answers is enough; the client learns the others from it). Credentials and
 * TLS (`rediss:`) of the first URL apply to every node. Rejects with a
 * `SessionError` if no seed node answers, or if connecting takes longer than
 * `timeout` ms (default 10 000, the storage's `timeout`; `Infinity` for no
 * bound); afterwards, errors go to `onError`.
 */
export async function openCluster(
  urls: readonly string[],
  onError: ((error: Error) => void) | undefined,
  timeout = 10_000,
): Promise<OpenedClient<NodeRedisClusterLike>> {
  let opened = false;
  const first = new URL(urls[0]);
  const cluster = createCluster({
    rootNodes: urls.map((url) => ({ url })),
    defaults: {
      username: first.username === "" ? undefined : decodeURIComponent(first.username),
      password: first.password === "" ? undefined : decodeURIComponent(first.password),
      socket: {
        tls: first.protocol === "rediss:" ? true : undefined,
        reconnectStrategy: reconnect(() => opened),
      },
      // A command for a master that is not connected fails at once: queued,
      // it would wait until that master came back, which after a failover
      // it never does (its slots have moved to the promoted replica).
      disableOfflineQueue: true,
    },
  });
  const failover = followFailover(cluster as unknown as ClusterInternals);
  const listener = (err: Error, node?: { host?: string; port?: number }) => {
    if (!opened) return;
    report(onError, err, node?.host === undefined ? "" : ` (${node.host}:${node.port})`);
    if (node?.host !== undefined) failover.nodeFailed(`${node.host}:${node.port}`);
  };
  cluster.on("error", listener);
  cluster.on("node-error", listener);
  try {
    await connectWithin(
      cluster.connect(),
      timeout,
      `the Redis Cluster at ${urls.map(redactUrl).join(", ")}`,
      () => cluster.destroy(),
      () => "no seed node answered",
    );
    opened = true;
  } catch (err) {
    try {
      cluster.destroy();
    } catch {
      // torn down already
    }
    if (err instanceof SessionError) throw err;
    throw new SessionError(
      `RedisStorage: cannot connect to the Redis Cluster at ${urls.map(redactUrl).join(", ")}: ${
        err instanceof Error ? err.message : String(err)
      }. Check that its nodes run and that the URLs are right.`,
      undefined,
      { cause: err },
    );
  }
  // Each master's connection is checked as a single server's is (silenceCheck).
  const checks = new WeakMap<object, { check(): void; stop(): void }>();
  let closed = false;
  const silence = (address: string) => ({
    silent: (ms: number) =>
      report(
        onError,
        new Error(`no answer within ${ms} ms: the connection went silent`),
        ` (${address})`,
      ),
  });
  return {
    client: cluster,
    stop: () => {
      closed = true;
      failover.stop();
    },
    close: () => {
      closed = true;
      failover.stop();
      try {
        cluster.destroy();
      } catch {
        // torn down already
      }
      return Promise.resolve();
    },
    grace: closeGrace(timeout),
    timedOut: () => {
      if (closed) return;
      for (const master of (cluster as unknown as ClusterInternals).masters) {
        const client = master.client as SilenceCheckable | undefined;
        if (client === undefined || typeof client.sendCommand !== "function") continue;
        let check = checks.get(client);
        if (check === undefined) {
          // A node's client reconnects by itself (node-redis's cluster client):
          // torn down, it is connected again.
          const reopen = (c: SilenceCheckable) => {
            c.destroy();
            c.connect().catch(() => {});
          };
          check = silenceCheck(() => client, reopen, timeout, silence(master.address));
          checks.set(client, check);
        }
        check.check();
      }
    },
  };
}

/**
 * Connects to `url`. Rejects with a `SessionError` if the server cannot be
 * reached after a few quick retries, or if connecting (the TCP handshake and
 * the server's answer to the client's first commands) takes longer than
 * `timeout` ms (default 10 000, the storage's `timeout`; `Infinity` for no
 * bound); afterwards, errors go to `onError`. The client handed out is a
 * {@link FreshConnection}: a node-redis client per TCP connection, a new one
 * after each loss (see `connection.ts` for why).
 */
export async function openClient(
  url: string,
  onError: ((error: Error) => void) | undefined,
  timeout = 10_000,
): Promise<OpenedClient> {
  const outage = outageLog(onError, `Redis at ${redactUrl(url)}`);
  const connection = new FreshConnection(url, timeout, outage);
  // The first client: a few quick retries, then connect() rejects instead of
  // waiting forever. After that, each client gives up at its first failure
  // and the connection opens the next.
  let opened = false;
  const first = createClient({
    url,
    socket: {
      reconnectStrategy: (retries: number, cause: Error) =>
        opened ? false : retries >= 2 ? cause : 100 * (retries + 1),
    },
  }) as unknown as NodeRedisConnection & {
    on(event: "connect", listener: () => void): unknown;
  };
  first.on("error", () => {}); // until it is adopted: reported by the rejection of connect()
  let reached = false;
  first.on("connect", () => (reached = true));
  try {
    await connectWithin(
      connection.open(first),
      timeout,
      `Redis at ${redactUrl(url)}`,
      () => {
        if (first.isOpen) first.destroy();
      },
      () => reached ? "it accepted the connection but did not answer" : "no connection was made",
    );
    opened = true;
    connection.adopt(first);
  } catch (err) {
    if (first.isOpen) first.destroy();
    if (err instanceof SessionError) throw err;
    throw new SessionError(
      `RedisStorage: cannot connect to Redis at ${redactUrl(url)}: ${
        err instanceof Error ? err.message : String(err)
      }. Check that the server runs and that REDIS_URL is right.`,
      undefined,
      { cause: err },
    );
  }
  const silence = silenceCheck(
    () => connection.current,
    (client) => connection.drop(client as NodeRedisConnection, "it went silent"),
    timeout,
    outage,
  );
  return {
    client: connection as RedisClientLike,
    stop: () => {
      silence.stop();
      connection.stop();
    },
    close: () => {
      silence.stop();
      return connection.close();
    },
    grace: closeGrace(timeout),
    timedOut: () => silence.check(),
  };
}

/**
 * What a connection that went silent gets: after a call timed out, a PING
 * is sent; if no answer comes within `timeout` either, nothing comes back
 * over that connection (a half-open TCP connection: the server or a NAT or
 * load balancer between forgot it without a FIN or RST; the kernel's
 * keepalive would notice only after many minutes), so it is dropped and a
 * new one opened, with one line in the outage log. Replies node-redis still
 * waits for fail then, as when a connection is cut; their calls were given
 * up already or fail as connection errors (their outcome unknown). One check
 * at a time; none after `stop`.
 */
function silenceCheck(
  current: () => SilenceCheckable | undefined,
  drop: (client: SilenceCheckable) => void,
  timeout: number,
  outage: { silent(ms: number): void },
): { check(): void; stop(): void } {
  let checking = false;
  let stopped = false;
  return {
    check() {
      const client = current();
      if (checking || stopped || timeout === Infinity || client === undefined) return;
      if (!client.isReady) return;
      checking = true;
      let answered = false;
      client.sendCommand(["PING"]).then(() => (answered = true), () => (answered = true));
      backgroundTimeout(() => {
        checking = false;
        if (answered || stopped || !client.isOpen || current() !== client) return;
        outage.silent(timeout);
        drop(client);
      }, timeout);
    },
    stop() {
      stopped = true;
    },
  };
}

/** What {@link silenceCheck} uses of a node-redis client. */
interface SilenceCheckable {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  sendCommand(args: string[]): Promise<unknown>;
  destroy(): void;
  connect(): Promise<unknown>;
}

/** `url` with its password hidden, for error messages. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "the given URL";
  }
}
