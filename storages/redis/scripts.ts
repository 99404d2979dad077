/**
 * The Lua scripts behind conditional writes and leases, each run in one round
 * trip with `EVALSHA` (falling back to `EVAL` when the server has not cached
 * the script yet, e.g. after a restart or `SCRIPT FLUSH`).
 *
 * The version of a session is its stored JSON text itself: a conditional
 * write sends the text it read along, and the script compares it with what
 * Redis holds, byte for byte. A session needs no second record and nothing is
 * hashed: the value stays a plain string, and a plain `write` or `delete`
 * changes the version as any other write does. (Hashing the text with
 * `redis.sha1hex` cost more than sending it twice, at every size measured,
 * and blocks the server while it runs.)
 *
 * @module
 */

import { createHash } from "node:crypto";
import { isErrorCode, type RedisClient } from "./client.ts";
import { commandsFor, type RedisCommands } from "./commands.ts";

/** A Lua script sent by its SHA-1 once Redis knows it. */
export class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = sha1(source);
  }

  /**
   * Runs the script with `keys` (all in one slot on a cluster: the first
   * routes the call) and `args`, through a driver's commands or a client.
   */
  run(via: RedisCommands | RedisClient, keys: string[], args: string[]): Promise<unknown> {
    const commands = "send" in via && "kind" in via ? via as RedisCommands : commandsFor(via);
    return this.#send(commands, keys[0], [
      "EVALSHA",
      this.sha,
      String(keys.length),
      ...keys,
      ...args,
    ]);
  }

  /** Runs the script on the one key `key` with `args` (the driver's way). */
  runOnKey(commands: RedisCommands, key: string, args: string[]): Promise<unknown> {
    return this.#send(commands, key, ["EVALSHA", this.sha, "1", key, ...args]);
  }

  async #send(commands: RedisCommands, key: string | undefined, command: string[]) {
    try {
      return await commands.send(key, command);
    } catch (err) {
      if (!isErrorCode(err, "NOSCRIPT")) throw err;
      return await commands.send(key, ["EVAL", this.source, ...command.slice(2)]);
    }
  }
}

/** The SHA-1 hex digest of the UTF-8 bytes of `text`: the name Redis caches a script by. */
export function sha1(text: string): string {
  return createHash("sha1").update(text, "utf8").digest("hex");
}

/**
 * KEYS[1] session key; ARGV[1] JSON text; ARGV[2] ttl in ms or "" for none;
 * ARGV[3] the text that must still be stored, left out for "nothing stored".
 * Returns 1 when written, 0 when the stored text differs.
 */
export const writeIfText = new Script(`
if redis.call('GET', KEYS[1]) ~= (ARGV[3] or false) then return 0 end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
`);

/**
 * KEYS[1] session key; ARGV[1] the text that must still be stored, left out
 * for "nothing stored". Returns 1 when deleted (or nothing stored and nothing
 * expected), else 0.
 */
export const deleteIfText = new Script(`
local current = redis.call('GET', KEYS[1])
if current ~= (ARGV[1] or false) then return 0 end
if current then redis.call('DEL', KEYS[1]) end
return 1
`);

/**
 * KEYS[1] lease key; ARGV[1] owner; ARGV[2] ttl in ms.
 * Takes a free lease with SET NX PX, or extends one `owner` already holds.
 * Returns 1 when `owner` holds the lease afterwards, else 0.
 */
export const acquireLease = new Script(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`);

/** KEYS[1] lease key; ARGV[1] owner; ARGV[2] ttl in ms. 1 if renewed, 0 if lost. */
export const renewLease = new Script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`);

/** KEYS[1] lease key; ARGV[1] owner. Deletes the lease only if `owner` holds it. */
export const releaseLease = new Script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`);
