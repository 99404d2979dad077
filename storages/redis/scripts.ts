/**
 * The Lua scripts behind conditional writes and leases, each run in one round
 * trip with `EVALSHA` (falling back to `EVAL` when the server has not cached
 * the script yet, e.g. after a restart or `SCRIPT FLUSH`).
 *
 * Versions are the SHA-1 (hex) of the stored JSON text, computed by Redis, so
 * a session needs no second record: the value stays a plain string and a
 * plain `write` or `delete` changes the version as any other write does.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { isErrorCode, type RedisClientLike } from "./client.ts";

/** A Lua script sent by its SHA-1 once Redis knows it. */
export class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = sha1(source);
  }

  /** Runs the script with `keys` and `args`. */
  async run(client: RedisClientLike, keys: string[], args: string[]): Promise<unknown> {
    const rest = [String(keys.length), ...keys, ...args];
    try {
      return await client.sendCommand(["EVALSHA", this.sha, ...rest]);
    } catch (err) {
      if (!isErrorCode(err, "NOSCRIPT")) throw err;
      return await client.sendCommand(["EVAL", this.source, ...rest]);
    }
  }
}

/** The SHA-1 hex digest of the UTF-8 bytes of `text`, as `redis.sha1hex` gives. */
export function sha1(text: string): string {
  return createHash("sha1").update(text, "utf8").digest("hex");
}

/**
 * KEYS[1] session key; ARGV[1] ttl in ms or "" for none.
 * Returns nil, or { text, version } and renews the TTL.
 */
export const readVersioned = new Script(`
local text = redis.call('GET', KEYS[1])
if not text then return false end
if ARGV[1] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return { text, redis.sha1hex(text) }
`);

/**
 * KEYS[1] session key; ARGV[1] expected version or "" for "nothing stored";
 * ARGV[2] JSON text; ARGV[3] ttl in ms or "" for none.
 * Returns 1 when written, 0 when the stored version differs.
 */
export const writeIfVersion = new Script(`
local current = redis.call('GET', KEYS[1])
if current then
  if ARGV[1] == '' or redis.sha1hex(current) ~= ARGV[1] then return 0 end
elseif ARGV[1] ~= '' then
  return 0
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
`);

/**
 * KEYS[1] session key; ARGV[1] expected version or "" for "nothing stored".
 * Returns 1 when deleted (or nothing stored and nothing expected), else 0.
 */
export const deleteIfVersion = new Script(`
local current = redis.call('GET', KEYS[1])
if not current then
  if ARGV[1] == '' then return 1 end
  return 0
end
if ARGV[1] == '' or redis.sha1hex(current) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
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
