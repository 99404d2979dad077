/**
 * One page of a listing of the keys under a prefix (`SCAN MATCH`), and the
 * values of a page's keys (`MGET`, a batch at a time).
 *
 * `SCAN` may return a key more than once while Redis resizes its tables;
 * the driver says so (`repeats`), and the shared layer hands each key out
 * once per listing.
 *
 * @module
 */

import { type RedisClientLike, replyList, replyText } from "./client.ts";
import { escapeGlob } from "./glob.ts";

/** Keys fetched per `MGET` call. */
export const MGET_BATCH = 100;
/** One page: the Redis keys of one `SCAN` call, and where it goes on. */
export interface KeyPage {
  redisKeys: string[];
  cursor: string | undefined;
}

/** Pages through the keys under one prefix. */
export class KeyScanner {
  readonly #match: string;

  /** Lists the keys that start with `prefix` (glob characters escaped). */
  constructor(readonly client: RedisClientLike, prefix: string) {
    this.#match = escapeGlob(prefix) + "*";
  }

  /**
   * One `SCAN` call from `cursor` (`undefined`: the start), asking for about
   * `count` keys. A key may come again in a later page (the layer drops
   * repeats: the driver says it `repeats`).
   */
  async page(cursor: string | undefined, count: number): Promise<KeyPage> {
    const reply = await this.client.sendCommand([
      "SCAN",
      cursor ?? "0",
      "MATCH",
      this.#match,
      "COUNT",
      String(count),
    ]);
    if (!Array.isArray(reply) || reply.length !== 2) {
      throw new TypeError("RedisStorage: unexpected reply to SCAN; is this a Redis server?");
    }
    const next = replyText(reply[0]) ?? "0";
    const redisKeys = replyList(reply[1]).filter((key): key is string => key !== undefined);
    return { redisKeys, cursor: next === "0" ? undefined : next };
  }

  /**
   * The text stored at each of `redisKeys` (same index), `undefined` for a
   * key that is gone or holds something other than a string.
   */
  async texts(redisKeys: string[]): Promise<(string | undefined)[]> {
    const out: (string | undefined)[] = [];
    for (let i = 0; i < redisKeys.length; i += MGET_BATCH) {
      const batch = redisKeys.slice(i, i + MGET_BATCH);
      out.push(...replyList(await this.client.sendCommand(["MGET", ...batch])));
    }
    return out;
  }
}
