/**
 * Listing keys under a prefix with `SCAN MATCH` and fetching their values
 * with `MGET`, a batch at a time.
 *
 * @module
 */

import { type RedisClientLike, replyList, replyText } from "./client.ts";
import { escapeGlob } from "./glob.ts";

/** Keys asked for per `SCAN` call (a hint to Redis, not a bound). */
export const SCAN_COUNT = 500;
/** Keys fetched per `MGET` call. */
export const MGET_BATCH = 100;

/**
 * Yields every Redis key that starts with `prefix`, a `SCAN` page at a time,
 * each key once (`SCAN` may repeat keys while the keyspace is rehashed).
 */
export async function* scanPages(
  client: RedisClientLike,
  prefix: string,
): AsyncGenerator<string[]> {
  const match = escapeGlob(prefix) + "*";
  const seen = new Set<string>();
  let cursor = "0";
  do {
    const reply = await client.sendCommand([
      "SCAN",
      cursor,
      "MATCH",
      match,
      "COUNT",
      `${SCAN_COUNT}`,
    ]);
    if (!Array.isArray(reply) || reply.length !== 2) {
      throw new TypeError("RedisStorage: unexpected reply to SCAN; is this a Redis server?");
    }
    cursor = replyText(reply[0]) ?? "0";
    const page: string[] = [];
    for (const key of replyList(reply[1])) {
      if (key === undefined || seen.has(key)) continue;
      seen.add(key);
      page.push(key);
    }
    if (page.length > 0) yield page;
  } while (cursor !== "0");
}

/**
 * Yields `[redisKey, text]` for every key under `prefix` that still holds a
 * string when its batch is fetched (keys deleted or expired in between, and
 * keys of other types, are skipped).
 */
export async function* scanEntries(
  client: RedisClientLike,
  prefix: string,
): AsyncGenerator<[redisKey: string, text: string]> {
  for await (const page of scanPages(client, prefix)) {
    for (let i = 0; i < page.length; i += MGET_BATCH) {
      const batch = page.slice(i, i + MGET_BATCH);
      const texts = replyList(await client.sendCommand(["MGET", ...batch]));
      for (const [j, text] of texts.entries()) {
        if (text !== undefined) yield [batch[j], text];
      }
    }
  }
}
