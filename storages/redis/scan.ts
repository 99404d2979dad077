/**
 * One page of a listing of the keys under a prefix (`SCAN MATCH`), and the
 * values of a page's keys (`MGET`, a batch at a time).
 *
 * `SCAN` may return a key more than once while Redis resizes its tables,
 * so each listing remembers the keys it has handed out. The cursor passed
 * between pages names the listing as well as the position in `SCAN`; the
 * memory of a listing is dropped when it ends, or, for listings abandoned
 * part way, once {@link OPEN_LISTINGS} newer ones are open.
 *
 * @module
 */

import { type RedisClientLike, replyList, replyText } from "./client.ts";
import { escapeGlob } from "./glob.ts";

/** Keys fetched per `MGET` call. */
export const MGET_BATCH = 100;
/** Unfinished listings whose keys are remembered (for a listing abandoned part way). */
export const OPEN_LISTINGS = 64;

/** One page: the Redis keys new to the listing, and where it goes on. */
export interface KeyPage {
  redisKeys: string[];
  cursor: string | undefined;
}

/** Pages through the keys under one prefix, each key once per listing. */
export class KeyScanner {
  readonly #match: string;
  readonly #seen = new Map<string, Set<string>>();
  #listings = 0;

  /** Lists the keys that start with `prefix` (glob characters escaped). */
  constructor(readonly client: RedisClientLike, prefix: string) {
    this.#match = escapeGlob(prefix) + "*";
  }

  /** One `SCAN` call from `cursor` (`undefined`: a new listing), asking for about `count` keys. */
  async page(cursor: string | undefined, count: number): Promise<KeyPage> {
    const [listing, position] = cursor === undefined
      ? [String(++this.#listings), "0"]
      : [cursor.slice(0, cursor.indexOf(":")), cursor.slice(cursor.indexOf(":") + 1)];
    const reply = await this.client.sendCommand([
      "SCAN",
      position,
      "MATCH",
      this.#match,
      "COUNT",
      String(count),
    ]);
    if (!Array.isArray(reply) || reply.length !== 2) {
      throw new TypeError("RedisStorage: unexpected reply to SCAN; is this a Redis server?");
    }
    const next = replyText(reply[0]) ?? "0";
    const seen = this.#seen.get(listing) ?? new Set<string>();
    this.#seen.delete(listing);
    const redisKeys: string[] = [];
    for (const key of replyList(reply[1])) {
      if (key === undefined || seen.has(key)) continue;
      seen.add(key);
      redisKeys.push(key);
    }
    if (next === "0") return { redisKeys, cursor: undefined };
    this.#seen.set(listing, seen);
    if (this.#seen.size > OPEN_LISTINGS) this.#seen.delete(this.#seen.keys().next().value!);
    return { redisKeys, cursor: `${listing}:${next}` };
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
