/**
 * One page of a listing of the keys under a prefix (`SCAN MATCH`, on every
 * master of a cluster), and the values of a page's keys (`MGET`, a batch at
 * a time; on a cluster a `GET` per key).
 *
 * `SCAN` may return a key more than once while Redis resizes its tables;
 * the driver says so (`repeats`), and the shared layer hands each key out
 * once per listing.
 *
 * @module
 */

import { isErrorCode, replyList, replyText } from "./client.ts";
import type { MasterNode, RedisCommands } from "./commands.ts";
import type { KeyLayout } from "./layout.ts";

/** Keys fetched per `MGET` call. */
export const MGET_BATCH = 100;
/** One page: the Redis keys of one `SCAN` call, and where it goes on. */
export interface KeyPage {
  redisKeys: string[];
  cursor: string | undefined;
}

/**
 * Pages through the session keys of a layout: on a single server one `SCAN`
 * walk (the cursor is Redis's own), on a cluster one walk per master, one
 * master after the other in the order of their addresses (the cursor is
 * `index:cursor`).
 */
export class KeyScanner {
  readonly #commands: RedisCommands;
  readonly #layout: KeyLayout;

  /** Lists the session keys of `layout` through `commands`. */
  constructor(commands: RedisCommands, layout: KeyLayout) {
    this.#commands = commands;
    this.#layout = layout;
  }

  /**
   * One `SCAN` call from `cursor` (`undefined`: the start), asking for about
   * `count` keys. A key may come again in a later page (the layer drops
   * repeats: the driver says it `repeats`).
   */
  async page(cursor: string | undefined, count: number): Promise<KeyPage> {
    const masters = await this.#commands.masters();
    if (!this.#commands.cluster) {
      const page = await this.#scan(masters[0], cursor ?? "0", count);
      return { redisKeys: page.redisKeys, cursor: page.next === "0" ? undefined : page.next };
    }
    let index = 0;
    let at = "0";
    if (cursor !== undefined) {
      const colon = cursor.indexOf(":");
      index = Number(cursor.slice(0, colon));
      at = cursor.slice(colon + 1);
    }
    if (index >= masters.length) return { redisKeys: [], cursor: undefined };
    const page = await this.#scan(masters[index], at, count);
    const redisKeys = page.redisKeys.filter((key) => this.#layout.isSessionKey(key));
    if (page.next !== "0") return { redisKeys, cursor: `${index}:${page.next}` };
    return { redisKeys, cursor: index + 1 < masters.length ? `${index + 1}:0` : undefined };
  }

  async #scan(
    master: MasterNode,
    cursor: string,
    count: number,
  ): Promise<{ redisKeys: string[]; next: string }> {
    const reply = await master.send([
      "SCAN",
      cursor,
      "MATCH",
      this.#layout.match,
      "COUNT",
      String(count),
    ]);
    if (!Array.isArray(reply) || reply.length !== 2) {
      throw new TypeError("RedisStorage: unexpected reply to SCAN; is this a Redis server?");
    }
    const next = replyText(reply[0]) ?? "0";
    const redisKeys = replyList(reply[1]).filter((key): key is string => key !== undefined);
    return { redisKeys, next };
  }

  /**
   * The text stored at each of `redisKeys` (same index), `undefined` for a
   * key that is gone or holds something other than a string. A single
   * server answers `MGET`s; a cluster refuses `MGET` across slots, so there
   * each key is a `GET` of its own, all sent at once (the client pipelines
   * those that go to one node).
   */
  async texts(redisKeys: string[]): Promise<(string | undefined)[]> {
    if (this.#commands.cluster) {
      return await Promise.all(redisKeys.map((key) => this.#get(key)));
    }
    const out: (string | undefined)[] = [];
    for (let i = 0; i < redisKeys.length; i += MGET_BATCH) {
      const batch = redisKeys.slice(i, i + MGET_BATCH);
      out.push(...replyList(await this.#commands.send(batch[0], ["MGET", ...batch])));
    }
    return out;
  }

  async #get(redisKey: string): Promise<string | undefined> {
    try {
      return replyText(await this.#commands.send(redisKey, ["GET", redisKey]));
    } catch (err) {
      if (isErrorCode(err, "WRONGTYPE")) return undefined; // as MGET answers for it
      throw err;
    }
  }
}
