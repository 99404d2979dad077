/**
 * The Redis driver behind `RedisStorage`: each session is one Redis string
 * at `prefix + key` holding its JSON text, which is also its version.
 *
 * | call                          | commands (one round trip each)                  |
 * | ----------------------------- | ----------------------------------------------- |
 * | read                          | `GETEX key PX ttl`, or `GETEX key PERSIST`      |
 * | write                         | `SET key text PX ttl`, or `SET key text`        |
 * | delete                        | `DEL key`                                       |
 * | conditional write, delete     | one script (`EVALSHA`, `EVAL` if not cached)    |
 * | has                           | `EXISTS key`                                    |
 * | listing page                  | `SCAN`, plus `MGET`s for values                 |
 * | acquire, renew, release lease | one script on `leasePrefix + key`               |
 *
 * Without a TTL, reads (`PERSIST`) and writes (a `SET` without `PX`) remove
 * any expiry an earlier configuration left; neither changes the text, so
 * neither changes the version.
 *
 * @module
 */

import { SessionError } from "../../src/errors.ts";
import type { KeyRules, ScanPage, SessionDriver, StoredRecord } from "../shared/driver.ts";
import { type RedisClientLike, replyText } from "./client.ts";
import type { ResolvedOptions } from "./options.ts";
import { KeyScanner } from "./scan.ts";
import * as scripts from "./scripts.ts";

/** Redis keys are binary-safe, but text must be well-formed to survive UTF-8. */
const KEYS: KeyRules = { wellFormed: true };

/** Sessions as Redis strings, through `client`. */
export class RedisDriver implements SessionDriver<string> {
  readonly name = "RedisStorage";
  readonly keys: KeyRules = KEYS;
  readonly #client: RedisClientLike;
  readonly #options: ResolvedOptions;
  /** The `PX` argument, or `""` without a TTL (as the write script takes it). */
  readonly #px: string;
  /** What `GETEX` does to the expiry: renew it, or remove it. */
  readonly #getex: string[];
  readonly #scanner: KeyScanner;
  #closeClient: (() => Promise<void>) | undefined;

  /** A driver over `client` with checked `options`. */
  constructor(client: RedisClientLike, options: ResolvedOptions) {
    this.#client = client;
    this.#options = options;
    this.#px = options.ttl === undefined ? "" : String(options.ttl);
    this.#getex = options.ttl === undefined ? ["PERSIST"] : ["PX", this.#px];
    this.#scanner = new KeyScanner(client, options.prefix);
  }

  /** Makes {@link RedisDriver.close} close the client with `close`. */
  own(close: () => Promise<void>): void {
    this.#closeClient = close;
  }

  async read(key: string): Promise<StoredRecord<string> | undefined> {
    const command = ["GETEX", this.#options.prefix + key, ...this.#getex];
    const text = replyText(await this.#client.sendCommand(command));
    return text === undefined ? undefined : { payload: text, version: text };
  }

  async write(
    key: string,
    text: string,
    expected: string | null | undefined,
  ): Promise<string | null> {
    const redisKey = this.#options.prefix + key;
    if (expected === undefined) {
      const px = this.#px === "" ? [] : ["PX", this.#px];
      await this.#client.sendCommand(["SET", redisKey, text, ...px]);
      return text;
    }
    const args = expected === null ? [text, this.#px] : [text, this.#px, expected];
    return await this.#run(scripts.writeIfText, redisKey, args) ? text : null;
  }

  async delete(key: string, expected: string | null | undefined): Promise<boolean> {
    const redisKey = this.#options.prefix + key;
    if (expected !== undefined) {
      return await this.#run(scripts.deleteIfText, redisKey, expected === null ? [] : [expected]);
    }
    await this.#client.sendCommand(["DEL", redisKey]);
    return true;
  }

  async has(key: string): Promise<boolean> {
    return Number(await this.#client.sendCommand(["EXISTS", this.#options.prefix + key])) > 0;
  }

  async scan(
    cursor: string | undefined,
    limit: number,
    values: boolean,
  ): Promise<ScanPage<string>> {
    const page = await this.#scanner.page(cursor, limit);
    const cut = this.#options.prefix.length;
    const out: ScanPage<string> = {
      keys: page.redisKeys.map((redisKey) => redisKey.slice(cut)),
      cursor: page.cursor,
    };
    if (values) out.payloads = await this.#scanner.texts(page.redisKeys);
    return out;
  }

  acquireLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.#run(scripts.acquireLease, this.#leaseKey(key), [owner, String(Math.ceil(ttl))]);
  }

  renewLease(key: string, owner: string, ttl: number): Promise<boolean> {
    return this.#run(scripts.renewLease, this.#leaseKey(key), [owner, String(Math.ceil(ttl))]);
  }

  async releaseLease(key: string, owner: string): Promise<void> {
    await this.#run(scripts.releaseLease, this.#leaseKey(key), [owner]);
  }

  async close(): Promise<void> {
    const close = this.#closeClient;
    this.#closeClient = undefined;
    await close?.();
  }

  /** Runs `script` on one key; whether it answered 1. */
  async #run(script: scripts.Script, redisKey: string, args: string[]): Promise<boolean> {
    return Number(await script.run(this.#client, [redisKey], args)) === 1;
  }

  #leaseKey(key: string): string {
    const { leasePrefix, leaseProblem } = this.#options;
    if (leaseProblem !== undefined) {
      throw new SessionError(
        `RedisStorage: cannot use leases: ${leaseProblem}. Give the storage a non-empty ` +
          `prefix, or a leasePrefix that does not overlap it.`,
        key,
      );
    }
    return leasePrefix + key;
  }
}
