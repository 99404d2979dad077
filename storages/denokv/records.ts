/**
 * The records `DenoKvStorage` keeps in KV, and where it keeps them.
 *
 * Under the storage prefix `P`:
 *
 * - `[...P, "s", key]`: the head of a session. Either an inline record, a
 *   `Uint8Array` of a 28-byte header (magic, format, flags, expiry time,
 *   version) and the UTF-8 bytes of the session's JSON text, or a manifest
 *   object holding the expiry time and the version and naming the generation
 *   of chunks that hold the session.
 *
 * Every head holds the session's **version**: 16 random bytes (32 hex digits
 * as a version token) drawn by each write. Renewing or clearing the expiry
 * rewrites the head with the same version, so its KV versionstamp changes but
 * the version handed out does not.
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

/**
 * A session stored in one KV value: the inline record as stored (a
 * `Uint8Array`, so KV stores its bytes as they are, with no structured-clone
 * serialization), read apart.
 */
export interface InlineHead {
  /** Expiry as epoch milliseconds, or `null` for none. */
  exp: number | null;
  /** The version (32 hex digits). */
  ver: string;
  /** The UTF-8 bytes of the session's JSON text (a view into `record`). */
  data: Uint8Array;
  /** The stored value: the header, then `data`. */
  record: Uint8Array;
}

/** A session split into chunks: the manifest. */
export interface ChunkedHead {
  /** Record format. */
  v: 2;
  /** Expiry as epoch milliseconds, or `null` for none. */
  exp: number | null;
  /** The version (32 hex digits). */
  ver: string;
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

/**
 * Bytes of the header of an inline record: the magic `"SK"`, the format
 * (`2`), flags (bit 0: the record has an expiry time), the expiry time as a
 * big-endian float64 (zero when there is none), and the 16 bytes of the
 * version.
 */
export const INLINE_HEADER_BYTES = 28;
const MAGIC_0 = 0x53; // "S"
const MAGIC_1 = 0x4b; // "K"
const FORMAT = 2;
/** The format of the development releases before versions were stored. */
const OLD_FORMAT = 1;
const HAS_EXP = 1;
const VERSION_AT = 12;
/** Bytes of a version. */
const VERSION_BYTES = 16;

const utf8 = new TextEncoder();
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += HEX[b];
  return out;
}

/**
 * A fresh version: 16 random bytes as 32 hex digits. Each write draws one.
 *
 * @example
 * ```ts
 * import { newVersion } from "./records.ts";
 *
 * newVersion().length; // 32
 * ```
 *
 * @returns A new version.
 */
export function newVersion(): string {
  return hex(crypto.getRandomValues(new Uint8Array(VERSION_BYTES)));
}

function isVersion(value: unknown): value is string {
  return typeof value === "string" && /^[0-9a-f]{32}$/.test(value);
}

/**
 * Encodes the JSON text of a session as an inline record with expiry `exp`
 * and version `ver`: the header, then the text's UTF-8 bytes, in one buffer.
 * The caller stores it as the head if it is small enough, and otherwise
 * splits `record.subarray(INLINE_HEADER_BYTES)` into chunks.
 *
 * @example
 * ```ts
 * import { encodeInline, INLINE_HEADER_BYTES, newVersion } from "./records.ts";
 *
 * encodeInline('{"a":1}', null, newVersion()).length - INLINE_HEADER_BYTES; // 7
 * ```
 *
 * @param text The JSON text.
 * @param exp Expiry as epoch milliseconds, or `null` for none.
 * @param ver The version, from {@link newVersion}.
 * @returns The record.
 */
export function encodeInline(text: string, exp: number | null, ver: string): Uint8Array {
  // UTF-8 takes at least one byte per UTF-16 code unit, so a buffer of that
  // size holds the whole text when it is ASCII, the common case.
  let record = new Uint8Array(INLINE_HEADER_BYTES + text.length);
  const first = utf8.encodeInto(text, record.subarray(INLINE_HEADER_BYTES));
  if (first.read < text.length) {
    const rest = utf8.encode(text.slice(first.read));
    const whole = new Uint8Array(INLINE_HEADER_BYTES + first.written + rest.length);
    whole.set(record.subarray(0, INLINE_HEADER_BYTES + first.written));
    whole.set(rest, INLINE_HEADER_BYTES + first.written);
    record = whole;
  }
  setInlineExp(record, exp);
  for (let i = 0; i < VERSION_BYTES; i++) {
    record[VERSION_AT + i] = parseInt(ver.slice(2 * i, 2 * i + 2), 16);
  }
  return record;
}

/**
 * A copy of an inline record with expiry `exp` (same text, same version).
 *
 * @example
 * ```ts
 * import { encodeInline, newVersion, reexpire } from "./records.ts";
 *
 * reexpire(encodeInline("{}", null, newVersion()), 1).length; // 30
 * ```
 *
 * @param record An inline record.
 * @param exp The new expiry as epoch milliseconds, or `null` for none.
 * @returns The new record.
 */
export function reexpire(record: Uint8Array, exp: number | null): Uint8Array {
  const copy = record.slice();
  setInlineExp(copy, exp);
  return copy;
}

function setInlineExp(record: Uint8Array, exp: number | null): void {
  record[0] = MAGIC_0;
  record[1] = MAGIC_1;
  record[2] = FORMAT;
  record[3] = exp === null ? 0 : HAS_EXP;
  new DataView(record.buffer, record.byteOffset, INLINE_HEADER_BYTES).setFloat64(4, exp ?? 0);
}

/**
 * Reads an inline record apart, or `undefined` if `value` is not one.
 *
 * @example
 * ```ts
 * import { encodeInline, inlineOf, newVersion } from "./records.ts";
 *
 * inlineOf(encodeInline("{}", 5, newVersion()))?.exp; // 5
 * ```
 *
 * @param value A stored value.
 * @returns The inline head.
 */
export function inlineOf(value: Uint8Array): InlineHead | undefined {
  if (
    value.length < INLINE_HEADER_BYTES || value[0] !== MAGIC_0 || value[1] !== MAGIC_1 ||
    value[2] !== FORMAT || (value[3] & ~HAS_EXP) !== 0
  ) return undefined;
  const exp = value[3] === HAS_EXP
    ? new DataView(value.buffer, value.byteOffset, INLINE_HEADER_BYTES).getFloat64(4)
    : null;
  const ver = hex(value.subarray(VERSION_AT, VERSION_AT + VERSION_BYTES));
  return { exp, ver, data: value.subarray(INLINE_HEADER_BYTES), record: value };
}

/**
 * The value to store for a head: the record of an inline head, the manifest
 * object of a chunked one.
 *
 * @example
 * ```ts
 * import { encodeInline, inlineOf, newVersion, storedHead } from "./records.ts";
 *
 * const record = encodeInline("{}", null, newVersion());
 * storedHead(inlineOf(record)!) === record; // true
 * ```
 *
 * @param head The head.
 * @returns The KV value.
 */
export function storedHead(head: Head): unknown {
  return "record" in head ? head.record : head;
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
 * parseHead({ v: 2, exp: null, ver: "0".repeat(32), gen: "g", n: 2, bytes: 70000 }, "42");
 * ```
 *
 * @param value The stored value.
 * @param key The session key, for the error message.
 * @returns The head.
 */
export function parseHead(value: unknown, key: string): Head {
  const head = headOf(value);
  if (head !== undefined) return head;
  if (oldChunksOf(value) !== undefined || isOldInline(value)) {
    throw new SessionError(
      `DenoKvStorage: the session "${key}" was written by a development release of ` +
        `DenoKvStorage before 0.1.0 (record format 1, without a stored version), which this ` +
        `release cannot read. Delete it with storage.delete(key), or start with a fresh prefix.`,
      key,
    );
  }
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
  if (value instanceof Uint8Array) return inlineOf(value);
  if (
    isRecord(value) && value.v === 2 && (value.exp === null || typeof value.exp === "number") &&
    isVersion(value.ver) && typeof value.gen === "string" && typeof value.n === "number" &&
    typeof value.bytes === "number"
  ) return value as unknown as ChunkedHead;
  return undefined;
}

function isOldInline(value: unknown): boolean {
  return value instanceof Uint8Array && value.length >= 12 && value[0] === MAGIC_0 &&
    value[1] === MAGIC_1 && value[2] === OLD_FORMAT;
}

/**
 * The generation a manifest of the development format 1 names, so deleting
 * such a session also removes its chunks.
 *
 * @example
 * ```ts
 * import { oldChunksOf } from "./records.ts";
 *
 * oldChunksOf({ v: 1, exp: null, gen: "g", n: 2, bytes: 70000 }); // { gen: "g", n: 2 }
 * ```
 *
 * @param value The stored value.
 * @returns The generation and its chunk count, or `undefined`.
 */
export function oldChunksOf(value: unknown): { gen: string; n: number } | undefined {
  if (isRecord(value) && value.v === 1 && typeof value.gen === "string") {
    if (typeof value.n === "number") return { gen: value.gen, n: value.n };
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
 * isExpired({ exp: 0 }, Date.now()); // true
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
