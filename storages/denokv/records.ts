/**
 * The records `DenoKvStorage` keeps in KV, and where it keeps them.
 *
 * Under the storage prefix `P`:
 *
 * - `[...P, "s", key]`: the head of a session. It holds the expiry time and
 *   either the whole session (`data`, the UTF-8 bytes of its JSON text) or a
 *   manifest naming the generation of chunks that hold it.
 * - `[...P, "c", key, gen, i]`: chunk `i` of generation `gen`, a raw slice of
 *   the JSON text's bytes. A generation is written once and never changed.
 * - `[...P, "g", key, gen]`: a marker per generation (its chunk count and
 *   creation time), so generations left behind by a crashed writer can be
 *   found and removed without reading chunk data.
 * - `[...P, "l", key]`: a lease (owner and expiry).
 *
 * Only `"s"` records are sessions, so listing `[...P, "s"]` never meets
 * chunks, markers or leases.
 *
 * @module
 */

import { SessionError } from "../../src/errors.ts";
import type { KvKeyLike } from "./kv.ts";

/** A session stored in one KV value. */
export interface InlineHead {
  /** Record format version. */
  v: 1;
  /** Expiry as epoch milliseconds, or `null` for none. */
  exp: number | null;
  /** The UTF-8 bytes of the session's JSON text. */
  data: Uint8Array;
}

/** A session split into chunks: the manifest. */
export interface ChunkedHead {
  /** Record format version. */
  v: 1;
  /** Expiry as epoch milliseconds, or `null` for none. */
  exp: number | null;
  /** The generation whose chunks hold the session. */
  gen: string;
  /** The number of chunks. */
  n: number;
  /** The total number of bytes of the JSON text. */
  bytes: number;
}

/** The head of a session. */
export type Head = InlineHead | ChunkedHead;

/** A generation marker. */
export interface GenMarker {
  /** When the generation was created, epoch milliseconds. */
  at: number;
  /** Its number of chunks. */
  n: number;
}

/** A lease. */
export interface Lease {
  /** Who holds it. */
  owner: string;
  /** When it runs out, epoch milliseconds. */
  exp: number;
}

/** Length of a generation id in characters. */
export const GEN_LENGTH = 20;

/**
 * A fresh generation id: the creation time in base 36 (so older generations
 * sort first and their age is known) and random hex digits.
 *
 * @example
 * ```ts
 * import { newGeneration } from "./records.ts";
 *
 * newGeneration().length; // 20
 * ```
 *
 * @returns A new, unique generation id.
 */
export function newGeneration(): string {
  const time = Date.now().toString(36).padStart(9, "0");
  const random = Array.from(crypto.getRandomValues(new Uint8Array(6)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${time}.${random}`.slice(0, GEN_LENGTH);
}

/**
 * The key layout of one storage prefix.
 *
 * @example
 * ```ts
 * import { Layout } from "./records.ts";
 *
 * new Layout(["sessions"]).head("42"); // ["sessions", "s", "42"]
 * ```
 */
export class Layout {
  /** The storage prefix. */
  readonly prefix: KvKeyLike;
  /**
   * Creates the layout.
   *
   * @param prefix The storage prefix.
   */
  constructor(prefix: KvKeyLike) {
    this.prefix = prefix;
  }
  /** Prefix of all heads. @returns The key prefix. */
  heads(): KvKeyLike {
    return [...this.prefix, "s"];
  }
  /** The head of `key`. @param key Session key. @returns The KV key. */
  head(key: string): KvKeyLike {
    return [...this.prefix, "s", key];
  }
  /**
   * Chunk `i` of generation `gen`.
   *
   * @param key Session key.
   * @param gen Generation id.
   * @param i Chunk index.
   * @returns The KV key.
   */
  chunk(key: string, gen: string, i: number): KvKeyLike {
    return [...this.prefix, "c", key, gen, i];
  }
  /** Prefix of the markers of `key`. @param key Session key. @returns The key prefix. */
  markers(key: string): KvKeyLike {
    return [...this.prefix, "g", key];
  }
  /**
   * The marker of generation `gen`.
   *
   * @param key Session key.
   * @param gen Generation id.
   * @returns The KV key.
   */
  marker(key: string, gen: string): KvKeyLike {
    return [...this.prefix, "g", key, gen];
  }
  /** The lease of `key`. @param key Session key. @returns The KV key. */
  lease(key: string): KvKeyLike {
    return [...this.prefix, "l", key];
  }
  /** The longest key stored for `key` (a chunk key). @param key Session key. @returns The KV key. */
  longest(key: string): KvKeyLike {
    return this.chunk(key, "g".repeat(GEN_LENGTH), 0);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/**
 * Checks that a stored value is a session head written by `DenoKvStorage`.
 *
 * @example
 * ```ts
 * import { parseHead } from "./records.ts";
 *
 * parseHead({ v: 1, exp: null, data: new Uint8Array() }, "42");
 * ```
 *
 * @param value The stored value.
 * @param key The session key, for the error message.
 * @returns The head.
 */
export function parseHead(value: unknown, key: string): Head {
  const head = headOf(value);
  if (head !== undefined) return head;
  throw new SessionError(
    `DenoKvStorage: the KV entry of session "${key}" was not written by DenoKvStorage, ` +
      `so it cannot be read. Another program writes under the same KV prefix: ` +
      `give DenoKvStorage a prefix of its own.`,
    key,
  );
}

/**
 * Reads a session head, or `undefined` if the value is not one.
 *
 * @example
 * ```ts
 * import { headOf } from "./records.ts";
 *
 * headOf("not a head"); // undefined
 * ```
 *
 * @param value The stored value.
 * @returns The head.
 */
export function headOf(value: unknown): Head | undefined {
  if (isRecord(value) && value.v === 1 && (value.exp === null || typeof value.exp === "number")) {
    if (value.data instanceof Uint8Array) return value as unknown as InlineHead;
    if (
      typeof value.gen === "string" && typeof value.n === "number" &&
      typeof value.bytes === "number"
    ) return value as unknown as ChunkedHead;
  }
  return undefined;
}

/**
 * Tells whether a head has expired at `now`.
 *
 * @example
 * ```ts
 * import { isExpired } from "./records.ts";
 *
 * const head = { v: 1 as const, exp: 0, data: new Uint8Array() };
 * isExpired(head, Date.now()); // true
 * ```
 *
 * @param head A head or lease.
 * @param now Epoch milliseconds.
 * @returns Whether it is past its expiry.
 */
export function isExpired(head: { exp: number | null }, now: number): boolean {
  return head.exp !== null && head.exp <= now;
}

/**
 * Reads a lease record, or `undefined` if the value is not one.
 *
 * @example
 * ```ts
 * import { parseLease } from "./records.ts";
 *
 * parseLease({ owner: "a", exp: 1 }); // { owner: "a", exp: 1 }
 * ```
 *
 * @param value The stored value.
 * @returns The lease.
 */
export function parseLease(value: unknown): Lease | undefined {
  if (isRecord(value) && typeof value.owner === "string" && typeof value.exp === "number") {
    return { owner: value.owner, exp: value.exp };
  }
  return undefined;
}

/**
 * Reads a generation marker, or `undefined` if the value is not one.
 *
 * @example
 * ```ts
 * import { parseMarker } from "./records.ts";
 *
 * parseMarker({ at: 1, n: 3 }); // { at: 1, n: 3 }
 * ```
 *
 * @param value The stored value.
 * @returns The marker.
 */
export function parseMarker(value: unknown): GenMarker | undefined {
  if (isRecord(value) && typeof value.at === "number" && typeof value.n === "number") {
    return { at: value.at, n: value.n };
  }
  return undefined;
}
