/**
 * Checking session keys and lease arguments against what a backend accepts,
 * with one wording for every storage.
 *
 * @module
 */

import { SessionError } from "../../src/errors.ts";
import type { KeyRules } from "./driver.ts";
import { MAX_LEASE_MS } from "../../src/lease.ts";

const encoder = new TextEncoder();

/** The UTF-8 length of `text`. */
export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/** Throws unless `key` is a string the backend of `name` can hold. */
export function checkKey(name: string, rules: KeyRules | undefined, key: unknown): string {
  if (typeof key !== "string") {
    throw new TypeError(
      `${name}: session keys must be strings, got ${key === null ? "null" : typeof key}. ` +
        `Check what getSessionKey returns.`,
    );
  }
  if (rules === undefined) return key;
  if ((rules.noNul && key.includes("\0")) || (rules.wellFormed && !key.isWellFormed())) {
    throw new SessionError(
      `${name}: the session key ${JSON.stringify(key)} contains ${
        key.includes("\0") && rules.noNul ? "a NUL character" : "a lone surrogate"
      }, which this storage cannot keep apart from other keys. Build keys from well-formed ` +
        `text in getSessionKey.`,
      key,
    );
  }
  const max = rules.maxBytes;
  // n UTF-16 units take at most 3n UTF-8 bytes: short keys need no encoding.
  if (max !== undefined && key.length > max / 3) {
    const bytes = utf8Length(key);
    if (bytes > max) {
      const shown = key.length > 40 ? `${key.slice(0, 40)}…` : key;
      throw new SessionError(
        `${name}: the session key "${shown}" is ${bytes} bytes long; keys are limited to ` +
          `${max} bytes${rules.maxBytesReason ? ` (${rules.maxBytesReason})` : ""}. Use ` +
          `shorter keys, for example a hash of a long key in getSessionKey. Nothing was written.`,
        key,
      );
    }
  }
  return key;
}

/** Throws unless `owner` is fit to hold a lease. */
export function checkOwner(name: string, owner: unknown): void {
  if (typeof owner !== "string" || owner === "" || owner.includes("\0") || !owner.isWellFormed()) {
    throw new TypeError(`${name}: a lease owner must be non-empty, well-formed text without NUL.`);
  }
}

/** Throws unless `ttl` is a lease time in ms: positive, finite, at most {@link MAX_LEASE_MS}. */
export function checkLeaseTtl(name: string, ttl: unknown): void {
  if (!(typeof ttl === "number" && ttl > 0 && ttl <= MAX_LEASE_MS)) {
    throw new RangeError(
      `${name}: a lease ttl must be a positive, finite number of milliseconds, at most ` +
        `${MAX_LEASE_MS}, got ${typeof ttl === "string" ? JSON.stringify(ttl) : String(ttl)}.`,
    );
  }
}
