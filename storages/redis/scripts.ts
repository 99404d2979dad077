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

/**
 * A locked read: takes the lease as {@link acquireLease} does (a free one,
 * or one `owner` already holds) and, only then, reads the session as
 * `GETEX` does for a plain read, in one step.
 *
 * KEYS[1] lease key; KEYS[2] session key (one slot on a cluster: the hash
 * tag); ARGV[1] owner; ARGV[2] lease ttl in ms; ARGV[3] the session's ttl in
 * ms, or "" for none (`GETEX ... PERSIST`). Returns 0 when another owner
 * holds the lease (nothing read, nothing changed); else `{1, text}`, or `{1}`
 * when no session is stored (a Lua table cannot hold nil).
 *
 * The session is read before the lease is set, which no one can tell apart
 * inside a script: so a `WRONGTYPE` reply (something other than a string at
 * the session key) leaves the lease as it was. `redis.pcall` hands that
 * error back as it is, code first, on every Redis version.
 */
export const acquireLeaseAndRead = new Script(`
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
local text
if ARGV[3] == '' then
  text = redis.pcall('GETEX', KEYS[2], 'PERSIST')
else
  text = redis.pcall('GETEX', KEYS[2], 'PX', ARGV[3])
end
if type(text) == 'table' and text.err then return text end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if text then return {1, text} end
return {1}
`);

/** The body of {@link saveAndReleaseLease}; without `release`, it keeps the lease. */
function lockedSave(release: boolean): string {
  return `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] ~= 'any' then
  local current = redis.pcall('GET', KEYS[2])
  if type(current) == 'table' and current.err then return current end
  if ARGV[3] == 'none' then
    if current then return 2 end
  elseif current ~= ARGV[4] then
    return 2
  end
end
if ARGV[5] == nil then
  redis.call('DEL', KEYS[2])
elseif ARGV[2] == '' then
  redis.call('SET', KEYS[2], ARGV[5])
else
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[2])
end
${release ? "redis.call('DEL', KEYS[1])\n" : ""}return 1
`;
}

/**
 * A locked save: only while `owner` holds the lease, writes or deletes the
 * session under a condition, as {@link writeIfText} and
 * {@link deleteIfText} (or a plain `SET`, `DEL`) do, and then deletes the
 * lease, in one step.
 *
 * KEYS[1] lease key; KEYS[2] session key; ARGV[1] owner; ARGV[2] the
 * session's ttl in ms, or "" for none; ARGV[3] the condition: "any"
 * (unconditional), "none" (only if nothing is stored) or "text" (only if
 * the stored text is ARGV[4]); ARGV[4] that text ("" for the others);
 * ARGV[5] the new text, left out for a delete. Returns 1 when done (the
 * lease deleted), 0 when `owner` does not hold the lease (nothing written),
 * 2 when the condition failed (nothing written, the lease kept). A
 * `WRONGTYPE` reply from the comparison comes back before anything changed.
 */
export const saveAndReleaseLease = new Script(lockedSave(true));

/**
 * {@link saveAndReleaseLease}, keeping the lease: a save while another
 * update of the key still runs in this process. Same keys, arguments and
 * replies; 1 leaves the lease in place.
 */
export const saveKeepingLease = new Script(lockedSave(false));
