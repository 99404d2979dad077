/**
 * The Redis driver behind `RedisStorage`: each session is one Redis string
 * holding its JSON text, which is also its version, at `prefix + key` (a
 * single server) or `{prefix + key}` (a cluster: the hash tag puts a session
 * and its lease, `leasePrefix + {prefix + key}`, in one slot).
 *
 * | call                          | commands (one round trip each)                      |
 * | ----------------------------- | --------------------------------------------------- |
 * | read                          | `GETEX key PX ttl`, or `GETEX key PERSIST`          |
 * | write                         | `SET key text PX ttl`, or `SET key text`            |
 * | delete                        | `DEL key`                                           |
 * | conditional write, delete     | one script (`EVALSHA`, `EVAL` if not cached)        |
 * | has                           | `EXISTS key`                                        |
 * | listing page                  | `SCAN`, plus `MGET`s for values (cluster: `GET`s)   |
 * | acquire, renew, release lease | one script on the lease key                         |
 * | acquire lease and read        | one script on the lease and the session key         |
 * | save and release lease        | one script on the lease and the session key         |
 *
 * Without a TTL, reads (`PERSIST`) and writes (a `SET` without `PX`) remove
 * any expiry an earlier configuration left; neither changes the text, so
 * neither changes the version.
 *
 * @module
 */

import { SessionError } from "../../src/errors.ts";
import type { LockedSave } from "../../src/capabilities.ts";
import type { KeyRules, ScanPage, SessionDriver, StoredRecord } from "../shared/driver.ts";
import { utf8Length } from "../shared/keys.ts";
import { isErrorCode, replyText } from "./client.ts";
import type { RedisCommands } from "./commands.ts";
import type { OpenedClient } from "./connect.ts";
import { InFlight, trackedCommands } from "./in_flight.ts";
import { type KeyLayout, layoutFor } from "./layout.ts";
import type { ResolvedOptions } from "./options.ts";
import { KeyScanner } from "./scan.ts";
import * as scripts from "./scripts.ts";

/** Redis keys are binary-safe, but text must be well-formed to survive UTF-8. */
const KEYS: KeyRules = { wellFormed: true };

/**
 * A `WRONGTYPE` reply means something else lives at a session's key: say
 * so, naming the key. Any other error is passed on as it is.
 */
function foreign(err: unknown, redisKey: string, key: string): unknown {
  if (!isErrorCode(err, "WRONGTYPE")) return err;
  return new SessionError(
    `RedisStorage: the Redis key "${redisKey}" holds something other than a string, so it was ` +
      `not written by sessionkit. Delete it, or give this storage a prefix of its own.`,
    key,
    { cause: err },
  );
}

/** A reply no script of ours gives (something between is not Redis). */
function unexpected(reply: unknown): TypeError {
  return new TypeError(`RedisStorage: unexpected reply from a lease script: ${String(reply)}.`);
}

/** Sessions as Redis strings, through `commands`. */
export class RedisDriver implements SessionDriver<string> {
  readonly name = "RedisStorage";
  readonly keys: KeyRules = KEYS;
  /** `SCAN` may return a key twice in one listing. */
  readonly repeats = true;
  /** Why leases cannot be used (an empty prefix, or a lease prefix overlapping it). */
  readonly leaseProblem: string | undefined;
  #commands: RedisCommands;
  readonly #layout: KeyLayout;
  /** The `PX` argument, or `""` without a TTL (as the write script takes it). */
  readonly #px: string;
  /** What `GETEX` does to the expiry: renew it, or remove it. */
  readonly #getex: string[];
  #scanner: KeyScanner;
  #closeClient: (() => Promise<void>) | undefined;
  #timedOut: (() => void) | undefined;

  /** A driver over `commands` with checked `options`. */
  constructor(commands: RedisCommands, options: ResolvedOptions) {
    this.#commands = commands;
    this.#layout = layoutFor(commands.cluster, options);
    this.#px = options.ttl === undefined ? "" : String(options.ttl);
    this.#getex = options.ttl === undefined ? ["PERSIST"] : ["PX", this.#px];
    this.#scanner = new KeyScanner(commands, this.#layout);
    this.leaseProblem = options.leaseProblem === undefined ? undefined : `RedisStorage: cannot ` +
      `use leases: ${options.leaseProblem}. Give the storage a non-empty prefix, or a ` +
      `leasePrefix that does not overlap it.`;
  }

  /**
   * Makes {@link RedisDriver.close} close the client this storage opened:
   * it stops reconnecting (calls waiting for a connection fail), waits up
   * to `grace` ms for the replies still outstanding, then tears the
   * connection down. Timed-out calls are handed to `timedOut` (the client
   * checks its connection then). A client passed in by the user is never
   * owned: it is left alone.
   */
  own(opened: OpenedClient<unknown>): void {
    const inFlight = new InFlight();
    this.#commands = trackedCommands(this.#commands, inFlight);
    this.#scanner = new KeyScanner(this.#commands, this.#layout);
    this.#closeClient = async () => {
      opened.stop();
      await inFlight.settled(opened.grace);
      await opened.close();
    };
    this.#timedOut = opened.timedOut?.bind(opened);
  }

  /** See `SessionDriver.timedOut`. */
  timedOut(): void {
    this.#timedOut?.();
  }

  async read(key: string): Promise<StoredRecord<string> | undefined> {
    const redisKey = this.#layout.sessionKey(key);
    let reply: unknown;
    try {
      reply = await this.#commands.send(redisKey, ["GETEX", redisKey, ...this.#getex]);
    } catch (err) {
      throw foreign(err, redisKey, key);
    }
    const text = replyText(reply);
    if (text === undefined) return undefined;
    if (text.includes("\uFFFD")) await this.#checkUtf8(redisKey, key, text);
    return { payload: text, version: text };
  }

  async write(
    key: string,
    text: string,
    expected: string | null | undefined,
  ): Promise<string | null> {
    const redisKey = this.#layout.sessionKey(key);
    if (expected === undefined) {
      const px = this.#px === "" ? [] : ["PX", this.#px];
      await this.#commands.send(redisKey, ["SET", redisKey, text, ...px]);
      return text;
    }
    const args = expected === null ? [text, this.#px] : [text, this.#px, expected];
    try {
      return await this.#run(scripts.writeIfText, redisKey, args) ? text : null;
    } catch (err) {
      throw foreign(err, redisKey, key);
    }
  }

  async delete(key: string, expected: string | null | undefined): Promise<boolean> {
    const redisKey = this.#layout.sessionKey(key);
    if (expected !== undefined) {
      return await this.#run(scripts.deleteIfText, redisKey, expected === null ? [] : [expected]);
    }
    await this.#commands.send(redisKey, ["DEL", redisKey]);
    return true;
  }

  async has(key: string): Promise<boolean> {
    const redisKey = this.#layout.sessionKey(key);
    return Number(await this.#commands.send(redisKey, ["EXISTS", redisKey])) > 0;
  }

  async scan(
    cursor: string | undefined,
    limit: number,
    values: boolean,
  ): Promise<ScanPage<string>> {
    const page = await this.#scanner.page(cursor, limit);
    const out: ScanPage<string> = {
      keys: page.redisKeys.map((redisKey) => this.#layout.sessionKeyOf(redisKey)),
      cursor: page.cursor,
    };
    if (values) {
      out.payloads = await this.#scanner.texts(page.redisKeys);
      await this.#checkMissing(page.redisKeys, out.payloads, out.keys);
    }
    return out;
  }

  /**
   * A listed key whose text did not come back is gone (deleted or expired
   * since the SCAN) or holds something other than a string (`MGET` answers
   * nil for both): the second throws, as a read of that key does, so that a
   * listing never leaves out silently what `readAllKeys` and `has` count.
   * One `TYPE` per such key; a listing of sessions alone sends none.
   */
  async #checkMissing(
    redisKeys: string[],
    payloads: (string | undefined)[],
    keys: string[],
  ): Promise<void> {
    for (const [i, text] of payloads.entries()) {
      if (text !== undefined) continue;
      const redisKey = redisKeys[i];
      const type = replyText(await this.#commands.send(redisKey, ["TYPE", redisKey]));
      if (type === undefined || type === "none" || type === "string") continue;
      throw new SessionError(
        `RedisStorage: the Redis key "${redisKey}" holds a ${type}, not a string, so it was ` +
          `not written by sessionkit. Delete it, or give this storage a prefix of its own.`,
        keys[i],
      );
    }
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

  /**
   * Takes the lease and, if taken, reads the session (`GETEX` with the TTL
   * or `PERSIST`, as `read`), in one script; `false` when another owner
   * holds the lease.
   */
  async acquireLeaseAndRead(
    key: string,
    owner: string,
    ttl: number,
  ): Promise<StoredRecord<string> | undefined | false> {
    const leaseKey = this.#leaseKey(key);
    const redisKey = this.#layout.sessionKey(key);
    let reply: unknown;
    try {
      reply = await scripts.acquireLeaseAndRead.run(this.#commands, [leaseKey, redisKey], [
        owner,
        String(Math.ceil(ttl)),
        this.#px,
      ]);
    } catch (err) {
      throw foreign(err, redisKey, key);
    }
    // 0: not taken; [1]: taken, nothing stored; [1, text]: taken, stored.
    if (!Array.isArray(reply)) {
      if (Number(reply) === 0) return false;
      throw unexpected(reply);
    }
    const text = replyText(reply[1]);
    if (text === undefined) return undefined;
    if (text.includes("\uFFFD")) await this.#checkUtf8(redisKey, key, text);
    return { payload: text, version: text };
  }

  /**
   * While `owner` holds the lease: writes (`SET`, with `PX` under a TTL) or
   * deletes the session under `expected` (as `write` and `delete`), then
   * deletes the lease, in one script.
   */
  saveAndReleaseLease(
    key: string,
    text: string | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return this.#lockedSave(scripts.saveAndReleaseLease, key, text, expected, owner);
  }

  /** As {@link RedisDriver.saveAndReleaseLease}, keeping the lease. */
  saveKeepingLease(
    key: string,
    text: string | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    return this.#lockedSave(scripts.saveKeepingLease, key, text, expected, owner);
  }

  async #lockedSave(
    script: scripts.Script,
    key: string,
    text: string | undefined,
    expected: string | null | undefined,
    owner: string,
  ): Promise<LockedSave> {
    const leaseKey = this.#leaseKey(key);
    const redisKey = this.#layout.sessionKey(key);
    const condition = expected === undefined
      ? ["any", ""]
      : expected === null
      ? ["none", ""]
      : ["text", expected];
    const args = [owner, this.#px, ...condition];
    if (text !== undefined) args.push(text);
    let reply: unknown;
    try {
      reply = await script.run(this.#commands, [leaseKey, redisKey], args);
    } catch (err) {
      throw foreign(err, redisKey, key);
    }
    switch (Number(reply)) {
      case 1:
        return { saved: true, version: text ?? null };
      case 2:
        return { saved: false, reason: "conflict" };
      case 0:
        return { saved: false, reason: "lease" };
      default:
        throw unexpected(reply);
    }
  }

  async close(): Promise<void> {
    const close = this.#closeClient;
    this.#closeClient = undefined;
    await close?.();
  }

  /**
   * Text with U+FFFD may be what the client made of bytes that are not
   * UTF-8 (written by something else): then it is not the stored text, and
   * as a version it could never match. Its stored length tells (one more
   * round trip, only for text holding U+FFFD).
   */
  async #checkUtf8(redisKey: string, key: string, text: string): Promise<void> {
    const stored = Number(await this.#commands.send(redisKey, ["STRLEN", redisKey]));
    if (stored === utf8Length(text)) return;
    throw new SessionError(
      `RedisStorage: the value at Redis key "${redisKey}" is not UTF-8 text, so it was not ` +
        `written by sessionkit (and could never be saved over by a conditional write). Delete ` +
        `it, or give this storage a prefix of its own.`,
      key,
    );
  }

  /** Runs `script` on one key; whether it answered 1. */
  async #run(script: scripts.Script, redisKey: string, args: string[]): Promise<boolean> {
    return Number(await script.runOnKey(this.#commands, redisKey, args)) === 1;
  }

  #leaseKey(key: string): string {
    if (this.leaseProblem !== undefined) throw new SessionError(this.leaseProblem, key);
    return this.#layout.leaseKey(key);
  }
}
