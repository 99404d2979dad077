/**
 * The part of a Redis client that `RedisStorage` uses, and the helpers that
 * turn its replies into strings.
 *
 * @module
 */

/**
 * The one method `RedisStorage` needs from a Redis client: sending a raw
 * command. Clients from `npm:redis` v5 and v4 (`createClient()`) both have
 * it, so either fits without a wrapper. Cluster clients do not fit (their
 * `sendCommand` takes a routing key first).
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
