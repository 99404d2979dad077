/**
 * Where a session and its lease live in Redis.
 *
 * | client         | session key            | lease key                           |
 * | -------------- | ---------------------- | ----------------------------------- |
 * | single server  | `prefix + key`         | `leasePrefix + key`                 |
 * | cluster        | `{` + prefix + key `}` | `leasePrefix + {` + prefix + key `}` |
 *
 * On a cluster the braces are a hash tag: Redis hashes only what lies
 * between the first `{` and the first `}` after it, here `prefix + key` up
 * to the key's first `}`, the same text in both names. So a session and its
 * lease are always in one slot (a script may touch both), and sessions are
 * spread over the slots by their key. The prefixes must then hold no braces
 * of their own (they would move the tag); with a non-empty prefix the tag is
 * never empty. A single server keeps the layout it always had, so data
 * written before stays readable.
 *
 * @module
 */

import { escapeGlob } from "./glob.ts";
import type { ResolvedOptions } from "./options.ts";

/** Names of Redis keys for session keys, and back. */
export interface KeyLayout {
  /** The Redis key of session `key`. */
  sessionKey(key: string): string;
  /** The Redis key of the lease of session `key`. */
  leaseKey(key: string): string;
  /** The `SCAN MATCH` pattern of every session key. */
  readonly match: string;
  /** Whether a Redis key that matched is a session key of this layout. */
  isSessionKey(redisKey: string): boolean;
  /** The session key of a Redis key for which `isSessionKey` holds. */
  sessionKeyOf(redisKey: string): string;
}

/** The layout for a cluster (`cluster`) or a single server. */
export function layoutFor(cluster: boolean, options: ResolvedOptions): KeyLayout {
  const { prefix, leasePrefix } = options;
  if (!cluster) {
    return {
      sessionKey: (key) => prefix + key,
      leaseKey: (key) => leasePrefix + key,
      match: escapeGlob(prefix) + "*",
      isSessionKey: () => true,
      sessionKeyOf: (redisKey) => redisKey.slice(prefix.length),
    };
  }
  for (const [name, value] of [["prefix", prefix], ["leasePrefix", leasePrefix]]) {
    if (/[{}]/.test(value)) {
      throw new RangeError(
        `RedisStorage: on a Redis Cluster the ${name} must not contain "{" or "}", got ` +
          `"${value}": the storage puts every session key in a hash tag of its own ` +
          `("{prefix + key}") so that a session and its lease share a slot, and braces in the ` +
          `${name} would move that tag. Use a ${name} without braces.`,
      );
    }
  }
  const start = 1 + prefix.length;
  return {
    sessionKey: (key) => "{" + prefix + key + "}",
    leaseKey: (key) => leasePrefix + "{" + prefix + key + "}",
    match: escapeGlob("{" + prefix) + "*}",
    isSessionKey: (redisKey) => redisKey.length > start && redisKey.endsWith("}"),
    sessionKeyOf: (redisKey) => redisKey.slice(start, -1),
  };
}
