/**
 * Opening a connection of `RedisStorage`'s own (`RedisStorage.connect`):
 * a client from `npm:redis` v5 that gives up quickly on a server it never
 * reached, reconnects for as long as it takes once it was connected, and
 * closes without hanging on a reply that never comes.
 *
 * @module
 */

// @ts-types="./redis_module.d.ts"
import { createClient } from "npm:redis@^5";
import { SessionError } from "../../src/errors.ts";
import type { RedisClientLike } from "./client.ts";

/** A connected client and how to close it. */
export interface OpenedClient {
  client: RedisClientLike;
  close(): Promise<void>;
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
  return {
    client: client as RedisClientLike,
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
