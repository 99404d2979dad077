/**
 * The internal text fast path. sessionkit's own storages keep a session as
 * its JSON text. The middleware already holds that text: it validated and
 * stringified the value to see whether it changed. Through this path a
 * storage takes that text as it is and hands back the text it holds, so a
 * session is never stringified, parsed and stringified again on its way.
 *
 * Not part of the public API: a storage registers its access with
 * {@link provideTextAccess} and the middleware looks it up with
 * {@link textAccessOf}. Storages without it (grammY's, third-party ones, or
 * a sessionkit storage wrapped by `enhanceStorage`) go through the public
 * `StorageAdapter` and `ConditionalStorage` methods as before.
 *
 * @module
 */

import type { MaybePromise } from "./storage.ts";

/** The stored JSON text of one key and its version. */
export interface TextRecord {
  /** The JSON text, or `null` when nothing is stored (or it expired). */
  text: string | null;
  /** The version token (as `readVersioned` gives it), `null` when nothing is stored. */
  version: string | null;
}

/**
 * Text-level access to a storage. Every method behaves as its public
 * counterpart (same TTL renewal, same key checks, same errors), except that
 * values are JSON text already checked by `serializeSession`.
 */
export interface TextAccess {
  /**
   * Whether `read` returns exactly the text that was written. When it does
   * not (PostgreSQL `jsonb` normalizes it), the middleware parses the text
   * and stringifies the result to get a text it can compare with.
   */
  readonly exact: boolean;
  /** Reads the text and version of `key` (renews the TTL as `read` does). */
  read(key: string): MaybePromise<TextRecord>;
  /**
   * Stores `text` under `key`. With `expected` given (`null`: only if nothing
   * is stored), only if the stored version is still that one; resolves to the
   * new version, or to `null` when it differed and nothing was written.
   * Without `expected` the write is unconditional and resolves to `undefined`.
   */
  write(
    key: string,
    text: string,
    expected?: string | null,
  ): MaybePromise<string | null | undefined>;
  /**
   * Deletes `key`. With `expected` given, only if the stored version is still
   * that one; resolves to whether it was. Without it, resolves to `true`.
   */
  delete(key: string, expected?: string | null): MaybePromise<boolean>;
}

const registry = new WeakMap<object, TextAccess>();

/** Registers the text access of `storage` (called by sessionkit's storages). */
export function provideTextAccess(storage: object, access: TextAccess): void {
  registry.set(storage, access);
}

/** The text access of `storage`, if it is a sessionkit storage that has one. */
export function textAccessOf(storage: object): TextAccess | undefined {
  return registry.get(storage);
}
