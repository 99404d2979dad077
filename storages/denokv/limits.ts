/**
 * The limits Deno KV enforces (the same in the `Deno.openKv` SQLite and
 * in-memory backends, in `npm:@deno/kv` and on Deno Deploy), and the size of
 * keys as KV encodes them.
 *
 * @module
 */

import type { KvKeyLike, KvKeyPartLike } from "./kv.ts";

/**
 * Limits of Deno KV, in bytes or counts.
 *
 * @example
 * ```ts
 * import { KV_LIMITS } from "./limits.ts";
 *
 * console.log(KV_LIMITS.maxValueBytes); // 65536
 * ```
 */
export const KV_LIMITS: {
  readonly maxValueBytes: number;
  readonly maxKeyBytes: number;
  readonly maxMutations: number;
  readonly maxMutationBytes: number;
  readonly maxTotalKeyBytes: number;
  readonly maxChecks: number;
  readonly maxGetMany: number;
} = {
  /** One value, serialized (a `Uint8Array` counts its length). */
  maxValueBytes: 65536,
  /** One key, encoded, when writing. Reads allow one byte more. */
  maxKeyBytes: 2048,
  /** Mutations in one atomic operation. */
  maxMutations: 1000,
  /**
   * Keys of checks and deletes, keys of sets twice, plus values, in one
   * atomic operation (measured on Deno 2.9's SQLite backend: a plan at
   * exactly this total commits, one byte more is refused).
   */
  maxMutationBytes: 819200,
  /** Keys in one atomic operation. */
  maxTotalKeyBytes: 81920,
  /** Checks in one atomic operation (100 today; it was 10 in older releases). */
  maxChecks: 100,
  /** Keys in one `getMany`. */
  maxGetMany: 10,
};

function zeros(bytes: Uint8Array): number {
  let n = 0;
  for (const b of bytes) if (b === 0) n++;
  return n;
}

/**
 * The UTF-8 length of `text` as KV encodes it (lone surrogates become
 * U+FFFD, three bytes), with every zero byte counted twice.
 */
function escapedUtf8Bytes(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += c === 0 ? 2 : 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4; // a surrogate pair
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * The encoded size of one key part: a type byte, the content (zero bytes
 * escaped as two bytes) and a terminator for strings and byte arrays.
 *
 * @example
 * ```ts
 * import { keyPartBytes } from "./limits.ts";
 *
 * keyPartBytes("abc"); // 5
 * ```
 *
 * @param part A key part.
 * @returns Its size in bytes as KV encodes it.
 */
export function keyPartBytes(part: KvKeyPartLike): number {
  if (typeof part === "string") return escapedUtf8Bytes(part) + 2;
  if (part instanceof Uint8Array) return part.length + zeros(part) + 2;
  if (typeof part === "number") return 9;
  if (typeof part === "boolean") return 1;
  // bigint: a type byte, a length byte for large values, and the magnitude.
  const magnitude = part < 0n ? -part : part;
  return 2 + Math.ceil(magnitude.toString(16).length / 2);
}

/**
 * The encoded size of a whole key.
 *
 * @example
 * ```ts
 * import { keyBytes } from "./limits.ts";
 *
 * keyBytes(["sessions", "42"]); // 14
 * ```
 *
 * @param key A KV key.
 * @returns Its size in bytes as KV encodes it.
 */
export function keyBytes(key: KvKeyLike): number {
  let n = 0;
  for (const part of key) n += keyPartBytes(part);
  return n;
}
