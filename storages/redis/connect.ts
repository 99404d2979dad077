/**
 * Opening a connection of `RedisStorage`'s own (`RedisStorage.connect`,
 * `RedisStorage.connectCluster`): a client (or cluster client) from
 * `npm:redis` v5 that gives up quickly on a server it never reached,
 * reconnects for as long as it takes once it was connected, and closes
 * without hanging on a reply that never comes.
 *
 * @module
 */

// @ts-types="./redis_module.d.ts"
import { createClient, createCluster } from "npm:redis@^5";
import { SessionError } from "../../src/errors.ts";
import type { NodeRedisClusterLike, RedisClientLike } from "./client.ts";

/** A connected client and how to close it. */
export interface OpenedClient<C = RedisClientLike> {
  client: C;
  close(): Promise<void>;
}

/** Reconnecting as `openClient` does: give up early before the first connection only. */
function reconnect(opened: () => boolean) {
  return (retries: number, cause: Error) =>
    opened() ? Math.min(50 * 2 ** retries, 2000) : retries >= 2 ? cause : 100 * (retries + 1);
}

/** Closes gracefully, tearing down after 2 s if a reply never comes. */
async function closeWithin(
  client: { close(): Promise<unknown>; destroy(): void; isOpen: boolean },
) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)));
  await Promise.race([client.close().catch(() => {}), gaveUp]);
  clearTimeout(timer);
  if (client.isOpen) client.destroy();
}

function report(onError: ((error: Error) => void) | undefined, err: Error): void {
  if (onError !== undefined) onError(err);
  else console.error("RedisStorage: Redis connection error (the client reconnects):", err);
}

/**
 * Connects to the cluster that the seed nodes `urls` belong to (any one that
 * answers is enough; the client learns the others from it). Credentials and
 * TLS (`rediss:`) of the first URL apply to every node. Rejects with a
 * `SessionError` if no seed node answers; afterwards, errors go to `onError`.
 */
export async function openCluster(
  urls: readonly string[],
  onError: ((error: Error) => void) | undefined,
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
    },
  });
  const listener = (err: Error) => {
    if (opened) report(onError, err);
  };
  cluster.on("error", listener);
  cluster.on("node-error", listener);
  try {
    await cluster.connect();
    opened = true;
  } catch (err) {
    cluster.destroy();
    throw new SessionError(
      `RedisStorage: cannot connect to the Redis Cluster at ${urls.map(redactUrl).join(", ")}: ${
        err instanceof Error ? err.message : String(err)
      }. Check that its nodes run and that the URLs are right.`,
      undefined,
      { cause: err },
    );
  }
  return { client: cluster, close: () => closeWithin(cluster) };
}

/**
 * Connects to `url`. Rejects with a `SessionError` if the server cannot be
 * reached after a few quick retries; afterwards, errors go to `onError`.
 */
export async function openClient(
  url: string,
  onError: ((error: Error) => void) | undefined,
): Promise<OpenedClient> {
  let opened = false;
  const client = createClient({
    url,
    socket: {
      // Before the first connection: a few quick retries, then give up so
      // that connect() rejects instead of waiting forever. Afterwards:
      // reconnect for as long as it takes, backing off up to 2 s.
      reconnectStrategy: reconnect(() => opened),
    },
  });
  client.on("error", (err: Error) => {
    if (!opened) return; // reported by the rejection of connect()
    report(onError, err);
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
  return {
    client: client as RedisClientLike,
    // A graceful close waits for every pending reply; if one never comes
    // (node-redis can lose one when the server drops the connection in the
    // middle of a command), the connection is torn down after 2 s.
    close: () => closeWithin(client),
  };
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
